# Public helpers, shared by the built-in rules and user policies: import them
# (import data.credgate.lib); their names and meanings hold across versions. The package is
# reserved: no user policy may declare it, so none can extend or redefine a helper.
package credgate.lib

# violation is the shape of every deny and warn entry.
violation(rule, credential, message) := {"rule": rule, "credential": credential, "message": message}

# target_containers are the containers and init containers that receive credentials: those
# named by the credgate.dev/containers annotation, or all of them (input.targets).
target_containers contains c if {
	some c in input.pod.spec.initContainers
	c.name in input.targets
}

target_containers contains c if {
	some c in input.pod.spec.containers
	c.name in input.targets
}

# same_env holds when the container's variable `have` is exactly what credential cred injects
# for its variable e: credgate's own earlier injection (re-invocation, or a pod created from
# an already-injected Job template), never a conflict.
same_env(have, cred, e) if {
	e.fromSecret
	ref := have.valueFrom.secretKeyRef
	ref.name == cred.secretRef.name
	ref.key == e.key
}

same_env(have, _, e) if {
	not e.fromSecret
	not have.valueFrom
	object.get(have, "value", "") == e.value
}

# credential_env_names are the names of the variables the requested credentials inject;
# credential_env_count counts their definitions (more than the names: some name is set twice).
# Rules test a container's variable against the set before looking for its credential.
credential_env_names := {e.name | some cred in input.credentials; some e in cred.env}

credential_env_count := sum([count(cred.env) | some cred in input.credentials])

# credential_env[name] lists the definitions of variable name among the requested credentials,
# each as [cred, e]: the credential and its entry of env. A rule finds the credentials that set
# a container's variable with one lookup, credential_env[have.name], not a loop over them all.
credential_env[e.name] contains [cred, e] if {
	some cred in input.credentials
	some e in cred.env
}

# injected_by_credgate holds for a container variable that some requested credential injects.
injected_by_credgate(have) if {
	some [cred, e] in credential_env[have.name]
	same_env(have, cred, e)
}

# nested holds when paths a and b are the same or one lies inside the other.
nested(a, b) if clean(a) == clean(b)

nested(a, b) if inside(clean(b), clean(a))

nested(a, b) if inside(clean(a), clean(b))

# inside holds when path child lies under directory parent.
inside(_, "/")

inside(child, parent) if startswith(child, concat("", [parent, "/"]))

clean(p) := trim_right(p, "/") if p != "/"

clean("/") := "/"

# service_account is the pod's service account, "default" when it names none.
service_account := sa if {
	sa := object.get(input.pod.spec, "serviceAccountName", "")
	sa != ""
} else := "default"

# available_text lists the credentials that exist in the namespace, for messages.
available_text := "there are none" if count(object.get(input, "available", [])) == 0

available_text := concat("", ["it has: ", concat(", ", input.available)]) if count(object.get(input, "available", [])) > 0
