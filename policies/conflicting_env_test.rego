package credgate.builtin_test

import data.credgate.test as t

test_two_credentials_same_variable if {
	a := t.aws_cred("aws-a")
	b := t.aws_cred("aws-b")
	["conflicting-env", "aws-b"] in t.denied(t.input_for(t.trainer, [a, b]))
}

test_container_sets_variable if {
	p := t.pod([t.container("trainer", [{"name": "WANDB_API_KEY", "value": "mine"}])])
	c := t.cred("wandb", {"env": [t.secret_env("WANDB_API_KEY", "api-key")]})
	["conflicting-env", "wandb"] in t.denied(t.input_for(p, [c]))
}

test_overridable_literal_yields if {
	p := t.pod([t.container("trainer", [{"name": "WANDB_PROJECT", "value": "mine"}])])
	c := t.cred("wandb", {"env": [t.literal_env("WANDB_PROJECT", "theirs", true)]})
	not ["conflicting-env", "wandb"] in t.denied(t.input_for(p, [c]))
}

test_non_overridable_literal_conflicts if {
	p := t.pod([t.container("trainer", [{"name": "WANDB_ENTITY", "value": "mine"}])])
	c := t.cred("wandb", {"env": [t.literal_env("WANDB_ENTITY", "theirs", false)]})
	["conflicting-env", "wandb"] in t.denied(t.input_for(p, [c]))
}

test_already_injected_is_not_a_conflict if {
	injected := {"name": "WANDB_API_KEY", "valueFrom": {"secretKeyRef": {"name": "wandb-secret", "key": "api-key"}}}
	literal := {"name": "WANDB_ENTITY", "value": "team"}
	p := t.pod([t.container("trainer", [injected, literal])])
	c := t.cred("wandb", {"env": [t.secret_env("WANDB_API_KEY", "api-key"), t.literal_env("WANDB_ENTITY", "team", false)]})
	count(t.denied(t.input_for(p, [c]))) == 0
}

test_same_name_other_secret_conflicts if {
	other := {"name": "WANDB_API_KEY", "valueFrom": {"secretKeyRef": {"name": "someone-elses", "key": "api-key"}}}
	p := t.pod([t.container("trainer", [other])])
	c := t.cred("wandb", {"env": [t.secret_env("WANDB_API_KEY", "api-key")]})
	["conflicting-env", "wandb"] in t.denied(t.input_for(p, [c]))
}

test_untargeted_container_is_ignored if {
	p := t.pod([t.container("trainer", []), t.container("metrics", [{"name": "WANDB_API_KEY", "value": "x"}])])
	c := t.cred("wandb", {"env": [t.secret_env("WANDB_API_KEY", "api-key")]})
	inp := object.union(t.input_for(p, [c]), {"targets": ["trainer"]})
	count(t.denied(inp)) == 0
}

test_init_container_checked if {
	p := {"metadata": {}, "spec": {"initContainers": [t.container("download", [{"name": "HF_TOKEN", "value": "x"}])], "containers": [t.container("trainer", [])]}}
	c := t.cred("hf", {"env": [t.secret_env("HF_TOKEN", "token")]})
	["conflicting-env", "hf"] in t.denied(t.input_for(p, [c]))
}
