package credgate.builtin_test

import data.credgate.test as t

test_ready_false if {
	c := t.cred("aws", {"status": {"conditions": [{"type": "Ready", "status": "False", "reason": "AssumeRoleFailed", "message": "InvalidClientTokenId"}]}})
	inp := t.input_for(t.trainer, [c])
	["credential-not-ready", "aws"] in t.denied(inp)
	some msg in t.messages(inp, "credential-not-ready")
	contains(msg, "AssumeRoleFailed")
}

test_ready_true if {
	c := t.cred("aws", {"status": {"conditions": [{"type": "Ready", "status": "True"}], "expiresAt": "2100-01-01T00:00:00Z"}})
	count(t.denied(t.input_for(t.trainer, [c]))) == 0
}

test_no_condition_is_not_refused if {
	count(t.denied(t.input_for(t.trainer, [t.cred("plain", {})]))) == 0
}

test_expired if {
	c := t.cred("aws", {"status": {"expiresAt": "2026-11-22T10:00:00Z"}})
	inp := t.input_for(t.trainer, [c])
	["credential-not-ready", "aws"] in t.denied(inp) with time.now_ns as time.parse_rfc3339_ns("2026-11-22T10:00:01Z")
	not ["credential-not-ready", "aws"] in t.denied(inp) with time.now_ns as time.parse_rfc3339_ns("2026-11-22T09:59:59Z")
}

test_assume_role_not_minted_yet if {
	inp := t.input_for(t.trainer, [t.assume_role_cred("s3", {})])
	["credential-not-ready", "s3"] in t.denied(inp)
	some msg in t.messages(inp, "credential-not-ready")
	contains(msg, "no temporary credentials yet")
}

test_assume_role_minted if {
	c := json.patch(t.assume_role_cred("s3", {}), [{"op": "add", "path": "/status", "value": {"conditions": [{"type": "Ready", "status": "True"}], "expiresAt": "2100-01-01T00:00:00Z"}}])
	count(t.denied(t.input_for(t.trainer, [c]))) == 0
}

test_assumed_role_minted_for_an_older_spec if {
	minted := {"generation": 2, "conditions": [{"type": "Ready", "status": "True", "observedGeneration": 1}]}
	stale := json.patch(t.assume_role_cred("role", {}), [{"op": "add", "path": "/status", "value": minted}])
	["credential-not-ready", "role"] in t.denied(t.input_for(t.trainer, [stale]))
	current := json.patch(stale, [{"op": "replace", "path": "/status/generation", "value": 1}])
	not ["credential-not-ready", "role"] in t.denied(t.input_for(t.trainer, [current]))
}
