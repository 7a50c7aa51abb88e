# unknown-credential refuses a pod that requests a credential that does not exist in its
# namespace, and lists those that do.
#
# The package and its helpers are internal to the rule: reserved (no user policy may declare
# it, so none can extend a helper) and not an API (user policies import data.credgate.lib).

# METADATA
# title: Credential does not exist
# description: >-
#   Refuses a pod that requests a credential that does not exist in its namespace, and lists
#   those that do.
# custom:
#   id: unknown-credential
#   enforcement: deny
package credgate.builtin.unknown_credential

import data.credgate.lib

deny contains lib.violation("unknown-credential", name, msg) if {
	some name in input.missing
	msg := sprintf("credential %q does not exist in namespace %q (%s); create it or fix the label credentials.credgate.dev/%s", [name, input.request.namespace, lib.available_text, name])
}
