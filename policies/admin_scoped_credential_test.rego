package credgate.builtin_test

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

# The issue "admin-scoped-credential reads IAM the way AWS evaluates it".

session_admin(doc) if ["admin-scoped-credential", "s3"] in t.denied(t.input_for(t.trainer, [t.assume_role_cred("s3", {"sessionPolicy": doc})]))

doc_messages(doc) := t.messages(t.input_for(t.trainer, [t.cred("c", {"access": {"policyDocument": doc}})]), "admin-scoped-credential")

one_log_group := "arn:aws:logs:us-east-1:123456789012:log-group:unused:*"

# A Deny takes a grant back only when it applies to every resource, unconditionally.

test_deny_on_one_log_group_does_not_take_back if {
	admin({"Statement": [stmt("Allow", "*", "*"), stmt("Deny", "*", one_log_group)]})
}

test_session_policy_deny_on_one_log_group_does_not_take_back if {
	session_admin({"Statement": [stmt("Allow", "*", "*"), stmt("Deny", "*", one_log_group)]})
}

test_deny_of_all_but_some_resources_does_not_take_back if {
	admin({"Statement": [stmt("Allow", "*", "*"), {"Effect": "Deny", "Action": "*", "NotResource": ["arn:aws:s3:::public/*"]}]})
	session_admin({"Statement": [stmt("Allow", "*", "*"), {"Effect": "Deny", "Action": "*", "NotResource": "arn:aws:s3:::public/*"}]})
}

test_deny_with_empty_not_resource_takes_back if {
	not admin({"Statement": [stmt("Allow", "*", "*"), {"Effect": "Deny", "Action": "*", "NotResource": []}]})
}

test_deny_on_any_pattern_matching_every_arn_takes_back if {
	every r in ["*", "arn*", "?*", "**", "arn:*", "arn:*:*", "*:*", "arn:*:*:*:*:*", "*:*:*:*:*:*", "?rn:*", "??*"] {
		not admin({"Statement": [stmt("Allow", "*", "*"), stmt("Deny", "*", ["arn:aws:s3:::x", r])]})
	}
}

test_deny_on_patterns_missing_some_arns_does_not_take_back if {
	every r in ["arn:aws:*", "arn:*:s3:*", "arn:*:*:*:*:*:*", "arn::*", "*::*", "arn:aws:s3:::*", "ARN:*", "????????????????????*", "arn"] {
		admin({"Statement": [stmt("Allow", "*", "*"), stmt("Deny", "*", r)]})
	}
}

test_deny_must_cover_the_grants_actions if {
	every a in ["*", "*:*", "?*", "**", "*:?*"] {
		not admin({"Statement": [stmt("Allow", "*", "*"), stmt("Deny", a, "*")]})
	}
	every a in ["s3:*", "iam:*", "*:Get*", "???*"] {
		admin({"Statement": [stmt("Allow", "*", "*"), stmt("Deny", a, "*")]})
	}
}

test_deny_with_empty_condition_is_unconditional if {
	not admin({"Statement": [stmt("Allow", "*", "*"), object.union(stmt("Deny", "*", "*"), {"Condition": {}})]})
}

test_deny_of_all_but_harmless_actions_takes_back if {
	not admin({"Statement": [stmt("Allow", "*", "*"), {"Effect": "Deny", "NotAction": ["s3:GetObject", "s3:List*"], "Resource": "*"}]})
}

test_deny_of_all_but_admin_actions_leaves_admin if {
	every keep in ["iam:*", "s3:*", "iam:PassRole", "*"] {
		admin({"Statement": [stmt("Allow", "*", "*"), {"Effect": "Deny", "NotAction": keep, "Resource": "*"}]})
	}
}

test_deny_of_a_service_takes_back_only_that_service if {
	not admin({"Statement": [stmt("Allow", ["s3:*", "sqs:*"], "*"), stmt("Deny", ["s3:*", "SQS:*"], "*")]})
	admin({"Statement": [stmt("Allow", ["s3:*", "sqs:*"], "*"), stmt("Deny", "s3:*", "*")]})
	admin({"Statement": [stmt("Allow", "i*:*", "*"), stmt("Deny", "iam:*", "*")]})
}

# Patterns matching every ARN are every resource; actions are globs.

test_allow_on_any_pattern_matching_every_arn if {
	every r in ["*", "arn*", "?*", "**", "arn:*", "arn:*:*", "*:*"] {
		admin({"Statement": [stmt("Allow", "s3:*", r)]})
	}
}

test_action_globs if {
	every a in ["iam:?*", "i?m:*", "*:*", "?*", "**", "IAM:*", "iam*"] {
		admin({"Statement": [stmt("Allow", a, "arn:aws:iam::123456789012:role/trainer")]})
	}
}

test_every_action_on_an_iam_role if {
	admin({"Statement": [stmt("Allow", "*", "arn:aws:iam::123456789012:role/trainer")]})
	admin({"Statement": [stmt("Allow", "*", "arn:aws:i*")]})
}

test_every_action_on_a_bucket_is_not_admin if {
	not admin({"Statement": [stmt("Allow", "*", ["arn:aws:s3:::data", "arn:aws:s3:::data/*"])]})
}

test_iam_actions_on_a_bucket_grant_nothing if {
	not admin({"Statement": [stmt("Allow", "iam:*", "arn:aws:s3:::data/*")]})
}

test_all_but_some_actions_on_every_resource if {
	admin({"Statement": [{"Effect": "Allow", "NotAction": "s3:GetObject", "Resource": "*"}]})
}

test_all_but_some_actions_on_an_iam_role if {
	admin({"Statement": [{"Effect": "Allow", "NotAction": ["s3:*"], "Resource": "arn:aws:iam::123456789012:role/trainer"}]})
	not admin({"Statement": [{"Effect": "Allow", "NotAction": ["s3:*"], "Resource": "arn:aws:s3:::data/*"}]})
}

test_all_actions_but_every_action_grant_nothing if {
	not admin({"Statement": [{"Effect": "Allow", "NotAction": "*", "Resource": "*"}]})
}

test_every_action_on_all_but_one_resource if {
	admin({"Statement": [{"Effect": "Allow", "Action": "*", "NotResource": "arn:aws:s3:::secret/*"}]})
}

test_every_resource_but_every_arn_grants_nothing if {
	not admin({"Statement": [{"Effect": "Allow", "Action": "*", "NotResource": ["arn:aws:s3:::x", "*"]}]})
}

# Privilege escalation is admin.

escalations := [
	"iam:PassRole", "iam:PutUserPolicy", "iam:PutRolePolicy", "iam:PutGroupPolicy",
	"iam:AttachUserPolicy", "iam:AttachRolePolicy", "iam:AttachGroupPolicy",
	"iam:CreateAccessKey", "iam:CreateLoginProfile", "iam:UpdateLoginProfile",
	"iam:CreatePolicyVersion", "iam:SetDefaultPolicyVersion", "iam:UpdateAssumeRolePolicy",
	"iam:AddUserToGroup", "sts:AssumeRole",
]

test_privilege_escalation_on_every_resource if {
	every a in escalations {
		some msg in doc_messages({"Statement": [stmt("Allow", ["s3:GetObject", lower(a)], "*")]})
		contains(msg, sprintf("allows %s on every resource (privilege escalation)", [a]))
	}
}

test_privilege_escalation_in_a_session_policy if session_admin({"Statement": [stmt("Allow", "iam:PassRole", "*")]})

test_privilege_escalation_by_wildcard if {
	some msg in doc_messages({"Statement": [stmt("Allow", ["iam:Put*Policy", "sts:Assume*"], "*")]})
	contains(msg, "iam:PutGroupPolicy on every resource")
	contains(msg, "and 1 more")
}

test_privilege_escalation_on_every_role if {
	some msg in doc_messages({"Statement": [stmt("Allow", "iam:PassRole", ["arn:aws:iam::123456789012:role/*", "arn:aws:s3:::data/*"])]})
	contains(msg, "iam:PassRole on arn:aws:iam::123456789012:role/* (privilege escalation)")
	admin({"Statement": [stmt("Allow", "sts:*", "arn:aws:iam::*:role/*")]})
}

test_privilege_escalation_actions_on_one_identity_are_not_admin if {
	not admin({"Statement": [
		stmt("Allow", "iam:PassRole", "arn:aws:iam::123456789012:role/sagemaker-exec"),
		stmt("Allow", "sts:AssumeRole", "arn:aws:iam::123456789012:role/reader"),
		stmt("Allow", ["iam:CreateAccessKey", "iam:UpdateLoginProfile"], "arn:aws:iam::123456789012:user/${aws:username}"),
	]})
}

test_all_but_iam_on_every_role_leaves_assume_role if {
	some msg in doc_messages({"Statement": [{"Effect": "Allow", "NotAction": ["iam:*"], "Resource": "arn:aws:iam::123456789012:role/*"}]})
	contains(msg, "sts:AssumeRole on arn:aws:iam::123456789012:role/*")
}

test_deny_takes_back_privilege_escalation if {
	every deny in ["iam:PassRole", "iam:Pass*", "iam:*", "*"] {
		not admin({"Statement": [stmt("Allow", "iam:PassRole", "*"), stmt("Deny", deny, "*")]})
	}
	admin({"Statement": [stmt("Allow", "iam:PassRole", "*"), stmt("Deny", "iam:PassRole", "arn:aws:iam::123456789012:role/admin")]})
}

# Administrative roles by every name a cloud gives them.

role_denied(role) if ["admin-scoped-credential", "c"] in t.denied(t.input_for(t.trainer, [t.cred("c", {"access": {"roles": [role]}})]))

test_azure_administrative_roles_by_id_and_path if {
	every id in ["8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "b24988ac-6180-42a0-ab88-20f7382dd24c", "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", "f58310d9-a9f6-439a-9e8d-f62e7b41a168"] {
		role_denied(id)
		role_denied(upper(id))
		role_denied(concat("", ["/providers/Microsoft.Authorization/roleDefinitions/", id]))
		role_denied(concat("", ["/subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333/providers/Microsoft.Authorization/roleDefinitions/", upper(id)]))
	}
	role_denied("Role Based Access Control Administrator")
}

test_azure_role_id_inside_another_path_is_not_a_role_definition if {
	not role_denied("/subscriptions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635/resourceGroups/rg")
	not role_denied("acdd72a7-3385-48ef-bd42-f606fba81ae7") # Reader
}

test_gcp_impersonation_and_resource_manager_roles if {
	every role in [
		"roles/iam.serviceAccountTokenCreator", "roles/iam.serviceAccountUser", "roles/iam.serviceAccountKeyAdmin",
		"roles/resourcemanager.projectIamAdmin", "roles/resourcemanager.organizationAdmin", "roles/resourcemanager.folderAdmin",
		"roles/iam.workloadIdentityUser",
	] {
		role_denied(role)
	}
	not role_denied("roles/iam.serviceAccountViewer")
}

test_kubernetes_administrative_roles if {
	every role in ["admin", "cluster-admin", "system:masters"] {
		role_denied(role)
	}
	not role_denied("edit")
}

test_role_message_names_the_role if {
	inp := t.input_for(t.trainer, [t.cred("c", {"access": {"roles": ["/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635"]}})])
	some msg in t.messages(inp, "admin-scoped-credential")
	contains(msg, "(Azure Owner)")
}

# Messages stay short: the first three findings, then how many more.

test_message_lists_three_findings_and_counts_the_rest if {
	some msg in doc_messages({"Statement": [stmt("Allow", ["s3:*", "sqs:*", "sns:*", "ec2:*", "iam:PassRole"], "*")]})
	contains(msg, "ec2:* on every resource, iam:PassRole on every resource (privilege escalation), s3:* on every resource and 2 more;")
}

# An impersonation credential's token acts as the impersonated service account: its roles are
# what the pod holds.
test_gcp_impersonation_with_an_administrative_role if {
	every role in ["roles/owner", "roles/iam.serviceAccountTokenCreator"] {
		c := t.impersonation_cred("gcs", {})
		inp := t.input_for(t.trainer, [object.union(c, {"access": {"level": "read-only", "roles": ["roles/storage.objectViewer", role]}})])
		["admin-scoped-credential", "gcs"] in t.denied(inp)
		some msg in t.messages(inp, "admin-scoped-credential")
		contains(msg, sprintf("credential gcs holds the administrative role %q", [role]))
	}
	scoped := object.union(t.impersonation_cred("gcs", {}), {"access": {"level": "read-only", "roles": ["roles/storage.objectViewer"]}})
	not ["admin-scoped-credential", "gcs"] in t.denied(t.input_for(t.trainer, [scoped]))
}
