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
	contains(msg, "credential s3 has no temporary credentials yet: credgate refresher has not assumed role arn:aws:iam::1:role/train")
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

test_impersonation_not_minted_yet if {
	inp := t.input_for(t.trainer, [t.impersonation_cred("gcs", {})])
	["credential-not-ready", "gcs"] in t.denied(inp)
	some msg in t.messages(inp, "credential-not-ready")
	contains(msg, "credential gcs has no access token yet: credgate refresher has not minted an access token for service account trainer@ml.iam.gserviceaccount.com")
}

test_impersonation_minted_for_an_older_spec if {
	minted := {"generation": 3, "conditions": [{"type": "Ready", "status": "True", "observedGeneration": 2}]}
	stale := json.patch(t.impersonation_cred("gcs", {}), [{"op": "add", "path": "/status", "value": minted}])
	inp := t.input_for(t.trainer, [stale])
	["credential-not-ready", "gcs"] in t.denied(inp)
	some msg in t.messages(inp, "credential-not-ready")
	contains(msg, "changed since credgate refresher minted its access token")
}

test_impersonation_minted if {
	minted := {"generation": 3, "conditions": [{"type": "Ready", "status": "True", "observedGeneration": 3}], "expiresAt": "2100-01-01T00:00:00Z"}
	c := json.patch(t.impersonation_cred("gcs", {}), [{"op": "add", "path": "/status", "value": minted}])
	not ["credential-not-ready", "gcs"] in t.denied(t.input_for(t.trainer, [c]))
}

# Only the refreshed modes wait for the refresher: a key file or federation has nothing to mint.
test_other_gcp_modes_without_condition_are_not_refused if {
	wif := t.cred("wif", {"type": "gcp", "gcp": {"mode": "workloadIdentityFederation", "serviceAccountEmail": "", "scopes": []}})
	d := t.denied(t.input_for(t.trainer, [t.gcp_key_cred("key"), wif]))
	not ["credential-not-ready", "key"] in d
	not ["credential-not-ready", "wif"] in d
}

test_impersonation_not_ready if {
	failed := {"conditions": [{"type": "Ready", "status": "False", "reason": "SourceNotGranted", "message": "no grant"}]}
	c := json.patch(t.impersonation_cred("gcs", {}), [{"op": "add", "path": "/status", "value": failed}])
	inp := t.input_for(t.trainer, [c])
	some msg in t.messages(inp, "credential-not-ready")
	contains(msg, "SourceNotGranted")
	count(t.messages(inp, "credential-not-ready")) == 1
}
