# service-account-not-allowed refuses a pod whose service account is not among a credential's
# allowedServiceAccounts (an empty list allows any service account in the namespace).
package credgate.admission

import data.credgate.lib

deny contains lib.violation("service-account-not-allowed", cred.name, msg) if {
	some cred in input.credentials
	allowed := object.get(cred, "allowedServiceAccounts", [])
	count(allowed) > 0
	not lib.service_account in allowed
	msg := sprintf("credential %s may be used by service accounts %s only, and the pod runs as %q; set spec.serviceAccountName, or ask for the account to be allowed", [cred.name, concat(", ", allowed), lib.service_account])
}
