# static-credentials warns when a credential hands a pod a long-lived cloud key, whatever its
# shape: temporary, down-scoped credentials expire and can do only what the job needs. In a
# namespace labelled credgate.dev/require-temporary=true it refuses them instead.
#
# The package and its helpers are internal to the rule: reserved (no user policy may declare
# it, so none can extend a helper) and not an API (user policies import data.credgate.lib).

# METADATA
# title: Long-lived cloud keys
# description: >-
#   Warns when a credential hands a pod a long-lived cloud key, whatever its shape; refuses it
#   instead in a namespace labelled credgate.dev/require-temporary=true.
# custom:
#   id: static-credentials
#   enforcement: warn
#   scope: credential
package credgate.builtin.static_credentials

import data.credgate.lib

# requires_temporary holds in namespaces that opted into temporary credentials only.
requires_temporary if input.namespace.labels["credgate.dev/require-temporary"] == "true"

# static_key_variables name the variables that carry a long-lived key (or a hand-copied
# session) themselves, from a Secret or as a literal, by cloud.
static_key_variables := {
	"AWS_SECRET_ACCESS_KEY": "AWS",
	"AWS_SESSION_TOKEN": "AWS",
	"AZURE_CLIENT_SECRET": "Azure",
	"AZURE_PASSWORD": "Azure",
}

# static_key_files name the variables that point an SDK at a key file: static when the
# credential mounts that file from a Secret (a projected token is not a key).
static_key_files := {
	"AWS_SHARED_CREDENTIALS_FILE": "AWS",
	"GOOGLE_APPLICATION_CREDENTIALS": "GCP",
	"AZURE_CLIENT_CERTIFICATE_PATH": "Azure",
}

# static_keys holds [credential, cloud, variable] for every long-lived key a credential hands
# the pod.
static_keys contains [cred.name, cloud, e.name] if {
	some cred in input.credentials
	some e in cred.env
	cloud := static_key_variables[e.name]
}

static_keys contains [cred.name, cloud, e.name] if {
	some cred in input.credentials
	count(cred.files) > 0
	cred.token == null
	some e in cred.env
	cloud := static_key_files[e.name]
}

# static_clouds[name] describes, for messages, the long-lived keys credential name hands over,
# by cloud: "AWS (AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN)".
static_clouds[name] := concat("; ", sort({sprintf("%s (%s)", [cloud, concat(", ", sort(variables))]) |
	some k in static_keys
	k[0] == name
	cloud := k[1]
	variables := {v | some j in static_keys; j[0] == name; j[1] == cloud; v := j[2]}
})) if {
	some [name, _, _] in static_keys
}

# cloud_remedies are what to use instead of a cloud's long-lived keys, where the cloud offers
# more than an assumed role or web identity.
cloud_remedies := {
	"Azure": "for Azure, workload identity (spec.azure.mode: workloadIdentity)",
	"GCP": "for GCP, service-account impersonation (spec.gcp.mode: impersonation) or workload identity federation (spec.gcp.mode: workloadIdentityFederation)",
}

# remedy(name) is what to use instead of credential name's keys, cloud by cloud: "" when none
# of its clouds has a remedy of its own.
remedy(name) := concat("", [concat("", ["; ", cloud_remedies[cloud]]) |
	some cloud in sort({k[1] | some k in static_keys; k[0] == name})
])

warn contains lib.violation("static-credentials", name, msg) if {
	not requires_temporary
	some name, what in static_clouds
	msg := sprintf("credential %s gives the pod long-lived keys: %s; prefer temporary credentials (an assumed role with a session policy, or web identity)%s", [name, what, remedy(name)])
}

deny contains lib.violation("static-credentials", name, msg) if {
	requires_temporary
	some name, what in static_clouds
	msg := sprintf("credential %s gives the pod long-lived keys: %s, and namespace %s requires temporary credentials (label credgate.dev/require-temporary=true): use a Credential that assumes a role or uses web identity%s", [name, what, input.namespace.name, remedy(name)])
}
