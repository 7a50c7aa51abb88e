# In namespaces labelled env=prod, long-lived AWS keys are refused: use temporary credentials.
# (The built-in static-credentials rule only warns.)
package credgate.admission

import data.credgate.lib

# METADATA
# title: Temporary credentials in production
# description: Namespaces labelled env=prod refuse long-lived AWS keys.
# custom:
#   id: temporary-credentials-required
#   enforcement: deny
deny contains lib.violation("temporary-credentials-required", cred.name, msg) if {
	input.namespace.labels.env == "prod"
	some cred in input.credentials
	some e in cred.env
	e.name == "AWS_SECRET_ACCESS_KEY"
	e.fromSecret
	msg := sprintf("credential %s gives the pod long-lived AWS keys, which production namespaces refuse; use temporary credentials", [cred.name])
}
