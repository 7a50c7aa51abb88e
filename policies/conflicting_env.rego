# conflicting-env refuses a pod in which two credentials set the same variable, or in which a
# credential sets a variable the container already sets (unless the credential marks its
# literal overridable): one of the two values would silently lose.
package credgate.admission

import data.credgate.lib

deny contains lib.violation("conflicting-env", b.name, msg) if {
	lib.credential_env_count > count(lib.credential_env_names)
	some i, a in input.credentials
	some j, b in input.credentials
	i < j
	some ea in a.env
	some eb in b.env
	ea.name == eb.name
	msg := sprintf("credentials %s and %s both set %s; request only one of them, or remove the variable from one Credential", [a.name, b.name, ea.name])
}

deny contains lib.violation("conflicting-env", cred.name, msg) if {
	some c in lib.target_containers
	some have in object.get(c, "env", [])
	have.name in lib.credential_env_names
	some cred in input.credentials
	some e in cred.env
	e.name == have.name
	not e.overridable
	not lib.same_env(have, cred, e)
	msg := sprintf("container %q already sets %s, which credential %s injects; remove it from the container (or, for a literal, mark the Credential's variable overridable)", [c.name, e.name, cred.name])
}
