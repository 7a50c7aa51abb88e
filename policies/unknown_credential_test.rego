package credgate.builtin_test

import data.credgate.test as t

test_missing_credential_listed if {
	inp := object.union(t.input_for(t.trainer, []), {"missing": ["openai"], "available": ["hf", "wandb"]})
	["unknown-credential", "openai"] in t.denied(inp)
	some msg in t.messages(inp, "unknown-credential")
	contains(msg, `"openai"`)
	contains(msg, "it has: hf, wandb")
	contains(msg, "credentials.credgate.dev/openai")
}

test_missing_in_empty_namespace if {
	inp := object.union(t.input_for(t.trainer, []), {"missing": ["openai"], "available": []})
	some msg in t.messages(inp, "unknown-credential")
	contains(msg, "there are none")
}

test_every_missing_credential_reported if {
	inp := object.union(t.input_for(t.trainer, []), {"missing": ["a", "b"]})
	{["unknown-credential", "a"], ["unknown-credential", "b"]} == t.denied(inp)
}
