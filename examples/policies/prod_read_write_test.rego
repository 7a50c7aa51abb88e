package credgate.prod_test

import data.credgate.test as t

prod(inp) := object.union(inp, {"namespace": {"name": "team-a", "labels": {"env": "prod"}}})

rw := t.cred("s3", {"access": {"level": "read-write"}})

as_sa(sa) := object.union(t.trainer, {"spec": {"serviceAccountName": sa}})

test_read_write_refused_for_other_service_account if {
	["prod-read-write-service-account", "s3"] in t.denied(prod(t.input_for(as_sa("notebook"), [rw])))
}

test_read_write_allowed_for_trainer if {
	not ["prod-read-write-service-account", "s3"] in t.denied(prod(t.input_for(as_sa("trainer"), [rw])))
}

test_read_only_allowed_for_anyone if {
	ro := t.cred("s3", {"access": {"level": "read-only"}})
	not ["prod-read-write-service-account", "s3"] in t.denied(prod(t.input_for(as_sa("notebook"), [ro])))
}

test_other_namespaces_unaffected if {
	inp := object.union(t.input_for(as_sa("notebook"), [rw]), {"namespace": {"name": "dev", "labels": {"env": "dev"}}})
	not ["prod-read-write-service-account", "s3"] in t.denied(inp)
}
