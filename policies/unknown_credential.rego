# unknown-credential refuses a pod that requests a credential that does not exist in its
# namespace, and lists those that do.
package credgate.admission

import data.credgate.lib

deny contains lib.violation("unknown-credential", name, msg) if {
	some name in input.missing
	msg := sprintf("credential %q does not exist in namespace %q (%s); create it or fix the label credentials.credgate.dev/%s", [name, input.request.namespace, lib.available_text, name])
}
