# conflicting-env refuses a pod in which two credentials set the same variable, or in which a
# credential sets a variable the container already sets (unless the credential marks its
# literal overridable): one of the two values would silently lose.
#
# The package and its helpers are internal to the rule: reserved (no user policy may declare
# it, so none can extend a helper) and not an API (user policies import data.credgate.lib).

# METADATA
# title: Variables set twice
# description: >-
#   Refuses a pod in which two credentials set the same variable, or a credential sets a variable
#   a target container already sets differently (unless the credential marks its literal
#   overridable): one of the two values would silently lose.
# custom:
#   id: conflicting-env
#   enforcement: deny
package credgate.builtin.conflicting_env

import data.credgate.lib

# env_setters[name] is the set of credentials that set variable name: built once, in one pass
# over every credential's variables, so that finding shared ones costs no pair of credentials.
env_setters[e.name] contains cred.name if {
	lib.credential_env_count > count(lib.credential_env_names)
	some cred in input.credentials
	some e in cred.env
}

deny contains lib.violation("conflicting-env", second, msg) if {
	some name, setters in env_setters
	count(setters) > 1
	names := sort(setters)
	some k, second in names
	k > 0
	msg := sprintf("credentials %s and %s both set %s; request only one of them, or remove the variable from one Credential", [names[0], second, name])
}

deny contains lib.violation("conflicting-env", cred.name, msg) if {
	# credential_env whole, then looked up: its value is kept per set of credentials.
	credential_env := lib.credential_env
	some c in lib.target_containers
	some have in object.get(c, "env", [])
	some [cred, e] in credential_env[have.name]
	not e.overridable
	not lib.same_env(have, cred, e)
	msg := sprintf("container %q already sets %s, which credential %s injects; remove it from the container (or, for a literal, mark the Credential's variable overridable)", [c.name, e.name, cred.name])
}
