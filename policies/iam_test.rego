package credgate.lib.iam_test

import data.credgate.lib.iam

stmt(effect, action, resource) := {"Effect": effect, "Action": action, "Resource": resource}

test_every_arn if {
	every r in ["*", "**", "?*", "??*", "arn*", "arn:*", "?rn:*", "arn:*:*", "*:*", "arn:*:*:*:*:*", "*:*:*:*:*:*", "arn?*"] {
		iam.every_arn(r)
	}
	every r in ["", "arn", "arn:", "arn:aws:*", "arn:*:s3:*", "arn::*", "*::*", "arn:*:*:*:*:*:*", "*:*:*:*:*:*:*", "ARN:*", "x*", "arn:?:*", "????????????????????*"] {
		not iam.every_arn(r)
	}
}

test_wide_resources if {
	every r in ["*", "arn:*:*", "arn:aws:s3:::*", "arn:aws:iam::123456789012:*", "arn:aws:s3:::?*"] {
		iam.wide(r)
	}
	every r in ["arn:aws:s3:::data/*", "arn:aws:s3:::data*", "arn:aws:iam::123456789012:role/*", "arn:aws:s3:::?"] {
		not iam.wide(r)
	}
}

test_could_be_iam if {
	every r in ["arn:aws:iam::123456789012:role/x", "arn:aws:i?m::1:role/x", "arn:aws:i*", "arn:*:iam::*:user/*", "arn:aws:IAM::1:role/x"] {
		iam.could_be_iam(r)
	}
	every r in ["arn:aws:s3:::data/*", "arn:aws:sts::1:federated-user/x", "x", "arn:aws"] {
		not iam.could_be_iam(r)
	}
}

test_all_of_a_kind if {
	every r in ["arn:aws:iam::123456789012:role/*", "arn:aws:iam::*:user/*", "arn:aws:iam::1:policy/?*"] {
		iam.all_of_a_kind(r)
	}
	every r in ["arn:aws:iam::1:role/x", "arn:aws:iam::1:role/team/*", "arn:aws:iam::1:role/?"] {
		not iam.all_of_a_kind(r)
	}
}

test_action_patterns if {
	every p in ["*", "*:*", "?*", "**", "*:?*"] {
		iam.every_action(p)
	}
	every p in ["s3:*", "*:get*", "??*", "?", "*:*:*"] {
		not iam.every_action(p)
	}
	iam.service_of("s3:*") == "s3"
	iam.service_of("iam:?*") == "iam"
	iam.service_of("i?m:*") == "i?m"
	iam.service_of("iam*") == "iam*"
	every p in ["s3:getobject", "s3:get*", "*", ":*", "i*m*"] {
		not iam.service_of(p)
	}
}

# IAM patterns know * and ? only: OPA's glob classes and alternatives are read literally.
test_glob_syntax_is_iam_syntax if {
	iam.escalations_of("iam:pass[r]ole") == set()
	iam.escalations_of("iam:{passrole,x}") == set()
	iam.escalations_of("iam:passrol?") == {"iam:passrole"}
	iam.escalations_of("iam:passrole") == {"iam:passrole"}
	iam.escalations_of("s3:getobject") == set()
	iam.escalations_of("s3:*") == set()
	iam.escalations_of("*role") == {"iam:passrole", "sts:assumerole"}
	iam.escalations_of("iam:*loginprofile") == {"iam:createloginprofile", "iam:updateloginprofile"}
	iam.admin_scopes({"Statement": [stmt("Allow", "*", "*"), stmt("Deny", "[*]", "*")]}) == {"*"}
}

test_admin_scopes if {
	iam.admin_scopes({"Statement": [
		stmt("Allow", ["s3:*", "iam:PassRole"], "*"),
		stmt("Allow", "iam:*", "arn:aws:iam::1:role/x"),
	]}) == {"s3", "iam:passrole", "iam"}
	iam.admin_scopes({"Statement": stmt("Allow", "s3:GetObject", "*")}) == set()
}

# Whatever is not a statement, or not a string where one is expected, is skipped.
test_malformed_statements_are_skipped if {
	iam.admin_scopes({"Statement": ["Allow", {"Effect": 1, "Action": "*", "Resource": "*"}, stmt("Allow", [1, "s3:*"], [null])]}) == set()
}
