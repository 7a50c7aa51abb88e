package credgate.admission_test

import data.credgate.test as t

test_static_aws_keys_warn if {
	inp := t.input_for(t.trainer, [t.aws_cred("aws")])
	["static-credentials", "aws"] in t.warned(inp)
	not ["static-credentials", "aws"] in t.denied(inp)
}

test_other_credentials_do_not_warn if {
	c := t.cred("wandb", {"env": [t.secret_env("WANDB_API_KEY", "api-key")]})
	count(t.warned(t.input_for(t.trainer, [c]))) == 0
}

test_static_aws_keys_refused_where_temporary_is_required if {
	inp := object.union(
		t.input_for(t.trainer, [t.aws_cred("aws")]),
		{"namespace": {"name": "team-a", "labels": {"credgate.dev/require-temporary": "true"}}},
	)
	["static-credentials", "aws"] in t.denied(inp)
	not ["static-credentials", "aws"] in t.warned(inp)
}

test_require_temporary_false_only_warns if {
	inp := object.union(
		t.input_for(t.trainer, [t.aws_cred("aws")]),
		{"namespace": {"name": "team-a", "labels": {"credgate.dev/require-temporary": "false"}}},
	)
	["static-credentials", "aws"] in t.warned(inp)
	not ["static-credentials", "aws"] in t.denied(inp)
}
