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
