package credgate.builtin_test

import data.credgate.test as t

test_two_aws_credentials if {
	d := t.denied(t.input_for(t.trainer, [t.aws_cred("aws-a"), t.aws_cred("aws-b")]))
	["multiple-cloud-identities", "aws-a"] in d
	["multiple-cloud-identities", "aws-b"] in d
}

test_static_keys_beside_irsa_role if {
	irsa := [{"name": "AWS_ROLE_ARN", "value": "arn:aws:iam::1:role/x"}, {"name": "AWS_WEB_IDENTITY_TOKEN_FILE", "value": "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"}]
	p := t.pod([t.container("trainer", irsa)])
	["multiple-cloud-identities", "aws"] in t.denied(t.input_for(p, [t.aws_cred("aws")]))
}

test_two_gcp_keys if {
	gcp := t.cred("gcs-a", {"env": [t.literal_env("GOOGLE_APPLICATION_CREDENTIALS", "/a/key.json", false)]})
	gcp2 := t.cred("gcs-b", {"env": [t.literal_env("GOOGLE_APPLICATION_CREDENTIALS", "/b/key.json", false)]})
	["multiple-cloud-identities", "gcs-b"] in t.denied(t.input_for(t.trainer, [gcp, gcp2]))
}

test_one_identity_per_cloud_is_fine if {
	gcp := t.cred("gcs", {"env": [t.literal_env("GOOGLE_APPLICATION_CREDENTIALS", "/a/key.json", false)]})
	d := t.denied(t.input_for(t.trainer, [t.aws_cred("aws"), gcp]))
	not ["multiple-cloud-identities", "aws"] in d
	not ["multiple-cloud-identities", "gcs"] in d
}

test_own_injection_is_one_identity if {
	injected := [{"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "aws-secret", "key": "aws_access_key_id"}}}]
	p := t.pod([t.container("trainer", injected)])
	count(t.denied(t.input_for(p, [t.aws_cred("aws")]))) == 0
}

test_static_keys_beside_assumed_role if {
	minted := {"conditions": [{"type": "Ready", "status": "True"}]}
	role := json.patch(t.assume_role_cred("role", {}), [{"op": "add", "path": "/status", "value": minted}])
	d := t.denied(t.input_for(t.trainer, [t.aws_cred("keys"), role]))
	["multiple-cloud-identities", "keys"] in d
	["multiple-cloud-identities", "role"] in d
}

test_container_keys_beside_assumed_role if {
	p := t.pod([t.container("trainer", [{"name": "AWS_ACCESS_KEY_ID", "value": "AKIA..."}])])
	["multiple-cloud-identities", "role"] in t.denied(t.input_for(p, [t.assume_role_cred("role", {})]))
}

test_shared_credentials_file_beside_keys if {
	p := t.pod([t.container("trainer", [{"name": "AWS_SHARED_CREDENTIALS_FILE", "value": "/home/me/.aws/credentials"}])])
	["multiple-cloud-identities", "aws"] in t.denied(t.input_for(p, [t.aws_cred("aws")]))
}

test_envfrom_that_may_set_identities_warns if {
	cases := [
		{"secretRef": {"name": "team-env"}},
		{"secretRef": {"name": "team-env"}, "prefix": "AWS_"},
		{"configMapRef": {"name": "team-env"}, "prefix": "A"},
	]
	every from in cases {
		c := object.union(t.container("trainer", []), {"envFrom": [from]})
		inp := t.input_for(t.pod([c]), [t.aws_cred("aws")])
		["multiple-cloud-identities", "aws"] in t.warned(inp)
		not ["multiple-cloud-identities", "aws"] in t.denied(inp)
	}
}

test_envfrom_of_another_prefix_is_fine if {
	c := object.union(t.container("trainer", []), {"envFrom": [{"secretRef": {"name": "wandb"}, "prefix": "WANDB_"}]})
	count(t.warned(t.input_for(t.pod([c]), [t.aws_cred("aws")]))) == 1 # static-credentials only
	not ["multiple-cloud-identities", "aws"] in t.warned(t.input_for(t.pod([c]), [t.aws_cred("aws")]))
}

# gcloud prefers CLOUDSDK_AUTH_ACCESS_TOKEN_FILE to GOOGLE_APPLICATION_CREDENTIALS: a key beside
# an impersonation credential's access token is two GCP identities.
test_gcp_key_beside_impersonation if {
	inp := t.input_for(t.trainer, [t.gcp_key_cred("key"), t.impersonation_cred("token", {})])
	d := t.denied(inp)
	["multiple-cloud-identities", "key"] in d
	["multiple-cloud-identities", "token"] in d
	some msg in t.messages(inp, "multiple-cloud-identities")
	contains(msg, "2 GCP identities (credential key, credential token)")
}

test_container_access_token_beside_gcp_key if {
	p := t.pod([t.container("trainer", [{"name": "CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", "value": "/home/me/token"}])])
	["multiple-cloud-identities", "key"] in t.denied(t.input_for(p, [t.gcp_key_cred("key")]))
}

test_container_gcloud_credential_override_beside_impersonation if {
	p := t.pod([t.container("trainer", [{"name": "CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE", "value": "/home/me/key.json"}])])
	["multiple-cloud-identities", "token"] in t.denied(t.input_for(p, [t.impersonation_cred("token", {})]))
}

test_one_gcp_key_credential_is_one_identity if {
	not ["multiple-cloud-identities", "key"] in t.denied(t.input_for(t.trainer, [t.gcp_key_cred("key")]))
}

test_one_impersonation_credential_is_one_identity if {
	inp := t.input_for(t.trainer, [t.impersonation_cred("token", {}), t.aws_cred("aws")])
	not ["multiple-cloud-identities", "token"] in t.denied(inp)
}
