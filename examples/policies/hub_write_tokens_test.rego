package credgate.hub_test

import data.credgate.test as t

hub(level) := t.cred("hf", {"type": "huggingface", "access": {"level": level}})

test_write_token_refused if {
	["hub-write-token", "hf"] in t.denied(t.input_for(t.trainer, [hub("read-write")]))
}

test_read_token_allowed if {
	not ["hub-write-token", "hf"] in t.denied(t.input_for(t.trainer, [hub("read-only")]))
}

test_other_types_unaffected if {
	s3 := t.cred("s3", {"access": {"level": "read-write"}})
	not ["hub-write-token", "s3"] in t.denied(t.input_for(t.trainer, [s3]))
}
