# admin-scoped-credential refuses credentials that grant administrative access: declared
# access.level admin; an IAM-style policy document or AWS session policy that allows every
# action (or every action of a service) on every resource, every IAM action on an IAM
# resource, or a privilege escalation — unless an unconditional Deny on every resource takes
# it back (data.credgate.lib.iam reads them as AWS does); administrative roles of AWS, GCP,
# Azure and Kubernetes by any of their names. docs/policies.md says what counts, with examples.
#
# The package and its helpers are internal to the rule: reserved (no user policy may declare
# it, so none can extend a helper) and not an API (user policies import data.credgate.lib).

# METADATA
# title: Credentials that grant administrative access
# description: >-
#   Refuses a credential that declares access.level admin; whose access.policyDocument, or an
#   assumeRole credential's aws.sessionPolicy, allows every action (or every action of a service)
#   on every resource, every IAM action on an IAM resource, or a privilege escalation, unless an
#   unconditional Deny on every resource takes it back; or that holds an administrative role of
#   AWS, GCP, Azure or Kubernetes.
# custom:
#   id: admin-scoped-credential
#   enforcement: deny
#   scope: credential
package credgate.builtin.admin_scoped_credential

import data.credgate.lib
import data.credgate.lib.iam

deny contains lib.violation("admin-scoped-credential", cred.name, msg) if {
	some cred in input.credentials
	cred.access.level == "admin"
	msg := sprintf("credential %s declares access.level admin; use a credential scoped to what the job needs (read-only or read-write)", [cred.name])
}

deny contains lib.violation("admin-scoped-credential", cred.name, msg) if {
	some cred in input.credentials
	doc := cred.access.policyDocument
	grants := iam.admin_grants(doc)
	count(grants) > 0
	msg := sprintf("credential %s: its access.policyDocument allows %s; scope its statements to the actions and resources the job needs", [cred.name, iam.summary(grants)])
}

# A session policy narrows the role to what it allows: one that allows everything narrows
# nothing, and hands the pod all of the role. (One rule over both documents, looked up by
# field, costs ~15% more allocations per evaluation: the two rules stay apart.)
deny contains lib.violation("admin-scoped-credential", cred.name, msg) if {
	some cred in input.credentials
	doc := cred.aws.sessionPolicy
	grants := iam.admin_grants(doc)
	count(grants) > 0
	msg := sprintf("credential %s: its aws.sessionPolicy allows %s, so it does not narrow the role; scope it to the actions and resources the job needs", [cred.name, iam.summary(grants)])
}

deny contains lib.violation("admin-scoped-credential", cred.name, msg) if {
	some cred in input.credentials
	some role in object.get(cred.access, "roles", [])
	why := iam.admin_role(role)
	msg := sprintf("credential %s holds the administrative role %q (%s); use a role limited to what the job needs", [cred.name, role, why])
}
