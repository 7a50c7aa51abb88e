# static-credentials warns when a credential hands a pod long-lived AWS keys: temporary,
# down-scoped credentials expire and can do only what the job needs. In a namespace labelled
# credgate.dev/require-temporary=true it refuses them instead.
package credgate.admission

import data.credgate.lib

# requires_temporary holds in namespaces that opted into temporary credentials only.
requires_temporary if input.namespace.labels["credgate.dev/require-temporary"] == "true"

# static_aws holds for a credential whose AWS secret key comes from a Secret as it is.
static_aws(cred) if {
	some e in cred.env
	e.name == "AWS_SECRET_ACCESS_KEY"
	e.fromSecret
}

warn contains lib.violation("static-credentials", cred.name, msg) if {
	not requires_temporary
	some cred in input.credentials
	static_aws(cred)
	msg := sprintf("credential %s gives the pod long-lived AWS keys; prefer temporary credentials (STS AssumeRole with a session policy, or web identity)", [cred.name])
}

deny contains lib.violation("static-credentials", cred.name, msg) if {
	requires_temporary
	some cred in input.credentials
	static_aws(cred)
	msg := sprintf("credential %s gives the pod long-lived AWS keys, and namespace %s requires temporary credentials (label credgate.dev/require-temporary=true): use a Credential that assumes a role or uses web identity", [cred.name, input.namespace.name])
}
