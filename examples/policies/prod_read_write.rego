# In namespaces labelled env=prod, only the service accounts listed in data.prod may run pods
# that use read-write (or admin) credentials.
package credgate.admission

import data.credgate.lib

# METADATA
# title: Read-write credentials in production
# description: >-
#   In namespaces labelled env=prod, only the service accounts of
#   data.prod.readWriteServiceAccounts may use read-write or admin credentials.
# custom:
#   id: prod-read-write-service-account
#   enforcement: deny
deny contains lib.violation("prod-read-write-service-account", cred.name, msg) if {
	input.namespace.labels.env == "prod"
	some cred in input.credentials
	cred.access.level in {"read-write", "admin"}
	not lib.service_account in data.prod.readWriteServiceAccounts
	msg := sprintf(
		"credential %s grants %s access; in production only service accounts %s may use it, and the pod runs as %q",
		[cred.name, cred.access.level, concat(", ", data.prod.readWriteServiceAccounts), lib.service_account],
	)
}
