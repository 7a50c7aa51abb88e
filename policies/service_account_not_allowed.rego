# service-account-not-allowed refuses a pod whose service account is not among a credential's
# allowedServiceAccounts (an empty list allows any service account in the namespace).
#
# The package and its helpers are internal to the rule: reserved (no user policy may declare
# it, so none can extend a helper) and not an API (user policies import data.credgate.lib).

# METADATA
# title: Service account not allowed
# description: >-
#   Refuses a pod whose service account is not among a credential's allowedServiceAccounts (an
#   empty list allows any service account of the namespace).
# custom:
#   id: service-account-not-allowed
#   enforcement: deny
package credgate.builtin.service_account_not_allowed

import data.credgate.lib

# restricted are the requested credentials that name the service accounts they may be used by.
restricted contains cred if {
	some cred in input.credentials
	count(object.get(cred, "allowedServiceAccounts", [])) > 0
}

deny contains lib.violation("service-account-not-allowed", cred.name, msg) if {
	some cred in restricted
	not lib.service_account in cred.allowedServiceAccounts
	msg := sprintf("credential %s may be used by service accounts %s only, and the pod runs as %q; set spec.serviceAccountName, or ask for the account to be allowed", [cred.name, concat(", ", cred.allowedServiceAccounts), lib.service_account])
}
