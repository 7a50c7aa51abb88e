package credgate.builtin_test

import data.credgate.test as t

test_static_aws_keys_warn if {
	inp := t.input_for(t.trainer, [t.aws_cred("aws")])
	["static-credentials", "aws"] in t.warned(inp)
	not ["static-credentials", "aws"] in t.denied(inp)
}

test_other_credentials_do_not_warn if {
	c := t.cred("wandb", {"env": [t.secret_env("WANDB_API_KEY", "api-key")]})
	count(t.warned(t.input_for(t.trainer, [c]))) == 0
}

test_static_aws_keys_refused_where_temporary_is_required if {
	inp := object.union(
		t.input_for(t.trainer, [t.aws_cred("aws")]),
		{"namespace": {"name": "team-a", "labels": {"credgate.dev/require-temporary": "true"}}},
	)
	["static-credentials", "aws"] in t.denied(inp)
	not ["static-credentials", "aws"] in t.warned(inp)
}

test_require_temporary_false_only_warns if {
	inp := object.union(
		t.input_for(t.trainer, [t.aws_cred("aws")]),
		{"namespace": {"name": "team-a", "labels": {"credgate.dev/require-temporary": "false"}}},
	)
	["static-credentials", "aws"] in t.warned(inp)
	not ["static-credentials", "aws"] in t.denied(inp)
}

# A long-lived key is static in every shape a Credential can hand it over.
test_static_keys_in_every_shape if {
	shapes := {
		"aws-literal-secret": t.cred("a", {"env": [t.literal_env("AWS_SECRET_ACCESS_KEY", "not-a-real-key", false)]}),
		"aws-session-token": t.cred("a", {"env": [t.secret_env("AWS_SESSION_TOKEN", "token")]}),
		"aws-shared-file": t.cred("a", {
			"env": [t.literal_env("AWS_SHARED_CREDENTIALS_FILE", "/var/run/secrets/credgate/a/credentials", false)],
			"files": [{"path": "/var/run/secrets/credgate/a/credentials"}],
		}),
		"gcp-key-file": t.cred("a", {
			"type": "gcp",
			"env": [t.literal_env("GOOGLE_APPLICATION_CREDENTIALS", "/var/run/secrets/credgate/a/key.json", false)],
			"files": [{"path": "/var/run/secrets/credgate/a/key.json"}],
		}),
		"azure-client-secret": t.cred("a", {"type": "azure", "env": [t.secret_env("AZURE_CLIENT_SECRET", "client-secret")]}),
		"azure-certificate": t.cred("a", {
			"env": [t.literal_env("AZURE_CLIENT_CERTIFICATE_PATH", "/var/run/secrets/credgate/a/cert.pem", false)],
			"files": [{"path": "/var/run/secrets/credgate/a/cert.pem"}],
		}),
	}
	every c in shapes {
		inp := object.union(t.input_for(t.trainer, [c]), {"namespace": {"name": "team-a", "labels": {"credgate.dev/require-temporary": "true"}}})
		["static-credentials", "a"] in t.denied(inp)
		["static-credentials", "a"] in t.warned(t.input_for(t.trainer, [c]))
	}
}

# A key file variable without a mounted Secret file, or with a projected token, is no key.
test_key_file_variables_without_secret_files if {
	no_files := t.cred("a", {"env": [t.literal_env("GOOGLE_APPLICATION_CREDENTIALS", "/etc/gcp/config.json", false)]})
	token := t.cred("a", {
		"env": [t.literal_env("GOOGLE_APPLICATION_CREDENTIALS", "/var/run/secrets/credgate/a/token", false)],
		"files": [{"path": "/var/run/secrets/credgate/a/token"}],
		"token": {"path": "/var/run/secrets/credgate/a/token", "audience": "x", "expirationSeconds": 3600},
	})
	count(t.warned(t.input_for(t.trainer, [no_files]))) == 0
	count(t.warned(t.input_for(t.trainer, [token]))) == 0
}

test_assumed_role_is_not_static if {
	count(t.warned(t.input_for(t.trainer, [t.assume_role_cred("s3", {})]))) == 0
}

test_message_names_every_key if {
	c := t.cred("a", {"env": [t.secret_env("AWS_SECRET_ACCESS_KEY", "k"), t.secret_env("AWS_SESSION_TOKEN", "t"), t.secret_env("AZURE_CLIENT_SECRET", "s")]})
	some v in t.warnings(t.input_for(t.trainer, [c]))
	contains(v.message, "AWS (AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN); Azure (AZURE_CLIENT_SECRET)")
}

# Azure keys get Azure's own remedy; AWS keys alone none.
test_azure_keys_point_at_workload_identity if {
	az := t.cred("az", {"env": [t.secret_env("AZURE_CLIENT_SECRET", "s")]})
	some v in t.warnings(t.input_for(t.trainer, [az]))
	endswith(v.message, "; for Azure, workload identity (spec.azure.mode: workloadIdentity)")
	aws := t.cred("a", {"env": [t.secret_env("AWS_SECRET_ACCESS_KEY", "k")]})
	every w in t.warnings(t.input_for(t.trainer, [aws])) {
		not contains(w.message, "; for ")
	}
}

# Workload identity hands the pod a projected token and literal ids: nothing static.
test_azure_workload_identity_is_not_static if {
	wi := t.cred("az", {
		"env": [
			t.literal_env("AZURE_CLIENT_ID", "6b0c0a3e-1f7e-4d8a-9a49-0c1f0b2f7a11", false),
			t.literal_env("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47", false),
			t.literal_env("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/credgate/az/azure-identity-token", false),
			t.literal_env("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com/", false),
		],
		"files": [{"path": "/var/run/secrets/credgate/az/azure-identity-token"}],
		"token": {"path": "/var/run/secrets/credgate/az/azure-identity-token", "audience": "api://AzureADTokenExchange", "expirationSeconds": 3600},
	})
	count(t.warned(t.input_for(t.trainer, [wi]))) == 0
	strict := object.union(t.input_for(t.trainer, [wi]), {"namespace": {"name": "p", "labels": {"credgate.dev/require-temporary": "true"}}})
	count(t.denied(strict)) == 0
}

# GCP key files get GCP's remedies; with Azure keys too, each cloud's, in order.
test_gcp_key_file_points_at_impersonation_and_federation if {
	gcp_remedy := "; for GCP, service-account impersonation (spec.gcp.mode: impersonation) or workload identity federation (spec.gcp.mode: workloadIdentityFederation)"
	some v in t.warnings(t.input_for(t.trainer, [t.gcp_key_cred("gcs")]))
	v.rule == "static-credentials"
	endswith(v.message, gcp_remedy)
	strict := object.union(t.input_for(t.trainer, [t.gcp_key_cred("gcs")]), {"namespace": {"name": "p", "labels": {"credgate.dev/require-temporary": "true"}}})
	some msg in t.messages(strict, "static-credentials")
	endswith(msg, gcp_remedy)
	both := t.cred("a", {
		"env": [t.secret_env("AZURE_CLIENT_SECRET", "s"), t.literal_env("GOOGLE_APPLICATION_CREDENTIALS", "/var/run/secrets/credgate/a/key.json", false)],
		"files": [{"path": "/var/run/secrets/credgate/a/key.json"}],
	})
	some w in t.warnings(t.input_for(t.trainer, [both]))
	endswith(w.message, concat("", ["; for Azure, workload identity (spec.azure.mode: workloadIdentity)", gcp_remedy]))
}

# An impersonation credential mounts files of a Secret, but the Secret holds the access token
# credgate refresher mints, read through CLOUDSDK_AUTH_ACCESS_TOKEN_FILE: nothing static.
test_gcp_impersonation_is_not_static if {
	minted := {"generation": 1, "conditions": [{"type": "Ready", "status": "True", "observedGeneration": 1}]}
	c := json.patch(t.impersonation_cred("gcs", {}), [{"op": "add", "path": "/status", "value": minted}])
	count(t.warned(t.input_for(t.trainer, [c]))) == 0
	strict := object.union(t.input_for(t.trainer, [c]), {"namespace": {"name": "p", "labels": {"credgate.dev/require-temporary": "true"}}})
	count(t.denied(strict)) == 0
}
