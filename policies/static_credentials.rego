# static-credentials warns when a credential hands a pod long-lived AWS keys: temporary,
# down-scoped credentials expire and can do only what the job needs.
package credgate.admission

import data.credgate.lib

warn contains lib.violation("static-credentials", cred.name, msg) if {
	some cred in input.credentials
	some e in cred.env
	e.name == "AWS_SECRET_ACCESS_KEY"
	e.fromSecret
	msg := sprintf("credential %s gives the pod long-lived AWS keys; prefer temporary credentials (STS AssumeRole with a session policy, or web identity)", [cred.name])
}
