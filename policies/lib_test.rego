package credgate.builtin_test

import data.credgate.lib
import data.credgate.test as t

# credential_env finds a variable's definitions by its name, across credentials, each as
# [credential, its entry of env].
test_credential_env_by_name if {
	a := t.aws_cred("aws-a")
	w := t.cred("wandb", {"env": [t.secret_env("WANDB_API_KEY", "api-key"), t.secret_env("AWS_ACCESS_KEY_ID", "k")]})
	env := lib.credential_env with input as t.input_for(t.trainer, [a, w])
	object.keys(env) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "WANDB_API_KEY"}
	{[c.name, e.key] | some [c, e] in env.AWS_ACCESS_KEY_ID} == {["aws-a", "aws_access_key_id"], ["wandb", "k"]}
	{[c.name, e.key] | some [c, e] in env.WANDB_API_KEY} == {["wandb", "api-key"]}
}

test_credential_env_without_credentials if {
	count(lib.credential_env) == 0 with input as t.input_for(t.trainer, [])
}
