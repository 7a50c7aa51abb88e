package credgate.prod_test

import data.credgate.test as t

test_static_keys_refused_in_prod if {
	inp := object.union(t.input_for(t.trainer, [t.aws_cred("aws")]), {"namespace": {"name": "p", "labels": {"env": "prod"}}})
	["temporary-credentials-required", "aws"] in t.denied(inp)
}

test_static_keys_only_warn_elsewhere if {
	inp := object.union(t.input_for(t.trainer, [t.aws_cred("aws")]), {"namespace": {"name": "d", "labels": {}}})
	not ["temporary-credentials-required", "aws"] in t.denied(inp)
	["static-credentials", "aws"] in t.warned(inp)
}
