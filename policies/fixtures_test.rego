# Fixtures for the built-in rules' tests: inputs shaped like the ones credgate builds.
package credgate.test

container(name, env) := {"name": name, "image": "trainer:1", "env": env}

pod(containers) := {"metadata": {"name": "train", "labels": {}}, "spec": {"containers": containers}}

secret_env(name, key) := {"name": name, "fromSecret": true, "key": key, "optional": false, "overridable": false}

literal_env(name, value, overridable) := {"name": name, "fromSecret": false, "value": value, "overridable": overridable}

# cred is a credential of the input document, with fields replaced by `with`.
cred(name, with_fields) := object.union(
	{
		"name": name, "type": "generic", "secretRef": {"name": concat("-", [name, "secret"])},
		"env": [], "files": [], "mountPath": "", "volumeName": concat("", ["credgate-", name]), "token": null,
		"imagePullSecret": false, "access": {}, "aws": {}, "gcp": {}, "azure": {}, "allowedServiceAccounts": [], "status": {},
	},
	with_fields,
)

aws_cred(name) := cred(name, {"type": "aws", "env": [
	secret_env("AWS_ACCESS_KEY_ID", "aws_access_key_id"),
	secret_env("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key"),
]})

# assume_role_cred is an assumeRole credential as Resolve makes it: a config file, no keys.
assume_role_cred(name, aws) := cred(name, {
	"type": "aws", "secretRef": {"name": concat("-", ["credgate-aws", name])},
	"env": [literal_env("AWS_CONFIG_FILE", concat("", ["/var/run/secrets/credgate/", name, "/config"]), false)],
	"aws": object.union({"mode": "assumeRole", "region": "", "endpoint": "", "roleArn": "arn:aws:iam::1:role/train"}, aws),
})

# impersonation_cred is a gcp impersonation credential as Resolve makes it: the managed Secret
# of the access token credgate refresher mints, CLOUDSDK_AUTH_ACCESS_TOKEN_FILE, no key.
impersonation_cred(name, gcp) := cred(name, {
	"type": "gcp", "secretRef": {"name": concat("-", ["credgate-gcp", name])},
	"env": [literal_env("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", concat("", ["/var/run/secrets/credgate/", name, "/access-token"]), false)],
	"files": [
		{"key": "access-token", "path": concat("", ["/var/run/secrets/credgate/", name, "/access-token"]), "mode": 256},
		{"key": "token.json", "path": concat("", ["/var/run/secrets/credgate/", name, "/token.json"]), "mode": 256},
	],
	"mountPath": concat("", ["/var/run/secrets/credgate/", name]),
	"gcp": object.union({"mode": "impersonation", "serviceAccountEmail": "trainer@ml.iam.gserviceaccount.com", "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}, gcp),
})

# gcp_key_cred is a gcp keyFile credential as Resolve makes it: key.json of its Secret.
gcp_key_cred(name) := cred(name, {
	"type": "gcp",
	"env": [
		literal_env("GOOGLE_APPLICATION_CREDENTIALS", concat("", ["/var/run/secrets/credgate/", name, "/key.json"]), false),
		literal_env("CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE", concat("", ["/var/run/secrets/credgate/", name, "/key.json"]), false),
	],
	"files": [{"key": "key.json", "path": concat("", ["/var/run/secrets/credgate/", name, "/key.json"]), "mode": 256}],
	"mountPath": concat("", ["/var/run/secrets/credgate/", name]),
	"gcp": {"mode": "keyFile", "serviceAccountEmail": "", "scopes": []},
})

# input_for builds the input document for pod p requesting creds; every container is a target.
input_for(p, creds) := {
	"request": {
		"operation": "CREATE", "namespace": "team-a", "name": "train", "dryRun": false,
		"kind": {"group": "", "version": "v1", "kind": "Pod"},
		"userInfo": {"username": "alice", "groups": ["team-a"]},
	},
	"namespace": {"name": "team-a", "labels": {}},
	"object": p,
	"pod": p,
	"credentials": creds,
	"missing": [],
	"available": [c.name | some c in creds],
	"targets": [c.name | some c in array.concat(object.get(p.spec, "initContainers", []), p.spec.containers)],
}

# denials and warnings are the violations of the deny and warn sets for inp: the built-in
# rules' (every package under data.credgate.builtin) and the user policies'
# (data.credgate.admission), as the engine reads them. Either may be undefined.
denials(inp) := {v | some v in data.credgate.builtin[_].deny with input as inp} | {v | some v in data.credgate.admission.deny with input as inp}

warnings(inp) := {v | some v in data.credgate.builtin[_].warn with input as inp} | {v | some v in data.credgate.admission.warn with input as inp}

# denied lists [rule, credential] for every deny of inp; warned the same for warn.
denied(inp) := {[v.rule, v.credential] | some v in denials(inp)}

warned(inp) := {[v.rule, v.credential] | some v in warnings(inp)}

# messages lists the messages of rule's denials.
messages(inp, rule) := {v.message |
	some v in denials(inp)
	v.rule == rule
}

trainer := pod([container("trainer", [])])
