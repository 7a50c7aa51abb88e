# multiple-cloud-identities refuses a pod that would hold two identities for one cloud — two
# AWS credentials, static keys beside a role (IRSA, EKS pod identity), two GCP keys, a GCP key
# beside an impersonated service account's access token — because the SDK's precedence would
# pick one silently.
#
# The package and its helpers are internal to the rule: reserved (no user policy may declare
# it, so none can extend a helper) and not an API (user policies import data.credgate.lib).

# METADATA
# title: Two identities for one cloud
# description: >-
#   Refuses a pod that would hold two identities for one cloud (two AWS credentials, static keys
#   beside a role, two GCP keys or a key beside an access token, two Azure secrets): the SDK
#   would pick one silently. Warns when a container's envFrom may set identity variables of a
#   cloud a credential also gives.
# custom:
#   id: multiple-cloud-identities
#   enforcement: deny
package credgate.builtin.multiple_cloud_identities

import data.credgate.lib

# identity_variables are the variables through which each cloud's SDKs find an identity, by
# variable name.
identity_variables := {
	"AWS_ACCESS_KEY_ID": "AWS",
	"AWS_ROLE_ARN": "AWS",
	"AWS_WEB_IDENTITY_TOKEN_FILE": "AWS",
	"AWS_CONTAINER_CREDENTIALS_FULL_URI": "AWS",
	"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "AWS",
	"AWS_PROFILE": "AWS",
	"AWS_SHARED_CREDENTIALS_FILE": "AWS",
	# credgate's assumeRole credentials: a config file whose credential_process reads them.
	"AWS_CONFIG_FILE": "AWS",
	"GOOGLE_APPLICATION_CREDENTIALS": "GCP",
	# gcloud's own pointer at a key or credential configuration, which it prefers to the above.
	"CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE": "GCP",
	# credgate's impersonation credentials: an access token, which gcloud prefers to any key.
	"CLOUDSDK_AUTH_ACCESS_TOKEN_FILE": "GCP",
	"AZURE_CLIENT_SECRET": "Azure",
	"AZURE_FEDERATED_TOKEN_FILE": "Azure",
	"AZURE_CLIENT_CERTIFICATE_PATH": "Azure",
	"AZURE_USERNAME": "Azure",
}

# credential_identities[cloud] are the names of the requested credentials that give an identity
# for that cloud. The identity variables the credentials inject are found by one set
# intersection, and only their setters looked up: most credentials give none.
credential_identities[cloud] contains cred.name if {
	some variable in (object.keys(identity_variables) & lib.credential_env_names)
	cloud := identity_variables[variable]
	some [cred, _] in lib.credential_env[variable]
}

# container_identities[cloud] lists, for messages, the identity variables of a cloud some
# credential gives that a target container sets itself (not injected by credgate).
container_identities[cloud] contains sprintf("%s set by container %s", [have.name, c.name]) if {
	some c in lib.target_containers
	some have in object.get(c, "env", [])
	cloud := identity_variables[have.name]
	credential_identities[cloud]
	not lib.injected_by_credgate(have)
}

# The sources are counted before they are written out (the credentials' and the containers'
# cannot share an entry): most pods hold one identity per cloud, and need no message.
deny contains lib.violation("multiple-cloud-identities", name, msg) if {
	some cloud, names in credential_identities
	count(names) + count(object.get(container_identities, cloud, set())) > 1
	sources := {sprintf("credential %s", [n]) | some n in names} | object.get(container_identities, cloud, set())
	some name in names
	msg := sprintf("the pod would hold %d %s identities (%s); the SDK would pick one silently: request only one", [count(sources), cloud, concat(", ", sort(sources))])
}

# A container's envFrom may set any variable of its Secret or ConfigMap, under its prefix:
# credgate cannot see which, so one whose prefix could start an identity variable of a cloud a
# credential also gives is a warning, not a refusal.
may_set_identity(from, cloud) if {
	some name, c in identity_variables
	c == cloud
	startswith(name, object.get(from, "prefix", ""))
}

envfrom_source(from) := sprintf("Secret %s", [from.secretRef.name]) if from.secretRef

envfrom_source(from) := sprintf("ConfigMap %s", [from.configMapRef.name]) if from.configMapRef

# (The envFrom sources first: most pods have none, and then nothing else is looked at.)
warn contains lib.violation("multiple-cloud-identities", name, msg) if {
	some c in lib.target_containers
	some from in object.get(c, "envFrom", [])
	some cloud, names in credential_identities
	some name in names
	may_set_identity(from, cloud)
	msg := sprintf("container %s takes variables from %s (envFrom, prefix %q), which may set %s identity variables beside credential %s: credgate cannot see them; make sure it does not", [c.name, envfrom_source(from), object.get(from, "prefix", ""), cloud, name])
}
