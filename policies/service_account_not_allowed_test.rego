package credgate.builtin_test

import data.credgate.test as t

sa_pod(sa) := object.union(t.trainer, {"spec": {"serviceAccountName": sa}})

test_not_allowed if {
	c := t.cred("prod-s3", {"allowedServiceAccounts": ["trainer"]})
	inp := t.input_for(sa_pod("notebook"), [c])
	["service-account-not-allowed", "prod-s3"] in t.denied(inp)
	some msg in t.messages(inp, "service-account-not-allowed")
	contains(msg, `"notebook"`)
}

test_allowed if {
	c := t.cred("prod-s3", {"allowedServiceAccounts": ["trainer"]})
	count(t.denied(t.input_for(sa_pod("trainer"), [c]))) == 0
}

test_default_service_account if {
	c := t.cred("prod-s3", {"allowedServiceAccounts": ["trainer"]})
	inp := t.input_for(t.trainer, [c])
	some msg in t.messages(inp, "service-account-not-allowed")
	contains(msg, `"default"`)
}

test_empty_list_allows_any if {
	count(t.denied(t.input_for(sa_pod("anything"), [t.cred("c", {})]))) == 0
}
