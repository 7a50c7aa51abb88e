package credgate.admission_test

import data.credgate.test as t

admin(doc) if ["admin-scoped-credential", "c"] in t.denied(t.input_for(t.trainer, [t.cred("c", {"access": {"policyDocument": doc}})]))

stmt(effect, action, resource) := {"Effect": effect, "Action": action, "Resource": resource}

test_declared_admin_level if {
	["admin-scoped-credential", "c"] in t.denied(t.input_for(t.trainer, [t.cred("c", {"access": {"level": "admin"}})]))
}

test_read_write_level_is_fine if {
	count(t.denied(t.input_for(t.trainer, [t.cred("c", {"access": {"level": "read-write"}})]))) == 0
}

test_star_on_star_statement_object if admin({"Statement": stmt("Allow", "*", "*")})

test_star_on_star_statement_array if admin({"Statement": [stmt("Allow", ["s3:GetObject"], ["arn:aws:s3:::data/*"]), stmt("Allow", ["*"], "*")]})

test_service_wide_on_star if admin({"Statement": [stmt("Allow", "s3:*", "*")]})

test_service_wide_on_all_buckets if admin({"Statement": [stmt("Allow", "s3:*", "arn:aws:s3:::*")]})

test_iam_star_on_one_resource if admin({"Statement": [stmt("Allow", "iam:*", "arn:aws:iam::123456789012:role/trainer")]})

test_iam_case_insensitive if admin({"Statement": [stmt("Allow", ["Iam:*"], "arn:aws:iam::123456789012:role/x")]})

test_wildcard_service_pattern_covers_iam if admin({"Statement": [stmt("Allow", "i*:*", "arn:aws:iam::1:role/x")]})

test_not_action_on_star if admin({"Statement": [{"Effect": "Allow", "NotAction": ["iam:*", "organizations:*"], "Resource": "*"}]})

test_not_resource_counts_as_every_resource if admin({"Statement": [{"Effect": "Allow", "Action": "s3:*", "NotResource": "arn:aws:s3:::secret/*"}]})

test_effect_case_insensitive if admin({"Statement": [stmt("allow", "*", "*")]})

test_bucket_scoped_service_wide_is_not_admin if {
	not admin({"Statement": [stmt("Allow", "s3:*", ["arn:aws:s3:::data", "arn:aws:s3:::data/*"])]})
}

test_named_actions_on_star_are_not_admin if {
	not admin({"Statement": [stmt("Allow", ["s3:GetObject", "s3:ListBucket"], "*")]})
}

test_deny_takes_back_service if {
	not admin({"Statement": [stmt("Allow", "s3:*", "*"), stmt("Deny", "s3:*", "*")]})
}

test_deny_star_takes_back_everything if {
	not admin({"Statement": [stmt("Allow", "*", "*"), stmt("Deny", "*", "*")]})
}

test_partial_deny_leaves_admin if admin({"Statement": [stmt("Allow", "*", "*"), stmt("Deny", "iam:*", "*")]})

test_conditional_deny_does_not_count if {
	admin({"Statement": [stmt("Allow", "s3:*", "*"), object.union(stmt("Deny", "s3:*", "*"), {"Condition": {"Bool": {"aws:SecureTransport": "false"}}})]})
}

test_deny_on_one_resource_does_not_take_back if admin({"Statement": [stmt("Allow", "s3:*", "*"), stmt("Deny", "s3:*", "arn:aws:s3:::logs/*")]})

test_admin_roles if {
	every role in [
		"AdministratorAccess", "arn:aws:iam::aws:policy/PowerUserAccess", "IAMFullAccess",
		"roles/owner", "roles/editor", "roles/storage.admin", "roles/iam.securityAdmin",
		"Owner", "Contributor", "User Access Administrator", "cluster-admin",
	] {
		["admin-scoped-credential", "c"] in t.denied(t.input_for(t.trainer, [t.cred("c", {"access": {"roles": [role]}})]))
	}
}

test_scoped_roles_are_fine if {
	every role in ["roles/storage.objectViewer", "Storage Blob Data Reader", "AmazonS3ReadOnlyAccess", "view"] {
		count(t.denied(t.input_for(t.trainer, [t.cred("c", {"access": {"roles": [role]}})]))) == 0
	}
}

test_message_says_what_and_how if {
	inp := t.input_for(t.trainer, [t.cred("c", {"access": {"policyDocument": {"Statement": stmt("Allow", "s3:*", "*")}}})])
	some msg in t.messages(inp, "admin-scoped-credential")
	contains(msg, "s3:*")
	contains(msg, "scope its statements")
}

test_session_policy_allowing_everything if {
	c := t.assume_role_cred("s3", {"sessionPolicy": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}})
	inp := t.input_for(t.trainer, [c])
	["admin-scoped-credential", "s3"] in t.denied(inp)
	some msg in t.messages(inp, "admin-scoped-credential")
	contains(msg, "aws.sessionPolicy")
}

test_session_policy_scoped_to_a_prefix if {
	c := t.assume_role_cred("s3", {"sessionPolicy": {"Statement": [{"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": "arn:aws:s3:::data/*"}]}})
	not ["admin-scoped-credential", "s3"] in t.denied(t.input_for(t.trainer, [c]))
}
