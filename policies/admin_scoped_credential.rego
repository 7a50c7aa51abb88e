# admin-scoped-credential refuses credentials that grant administrative access: declared
# access.level admin, an IAM-style policy document or AWS session policy that allows every
# action (or every action of a service) on every resource, or any iam:* — unless a Deny takes
# it back — and administrative role names of AWS, GCP, Azure and Kubernetes.
package credgate.admission

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
	scopes := iam.admin_scopes(doc)
	count(scopes) > 0
	words := sort([iam.describe(s) | some s in scopes])
	msg := sprintf("credential %s: its access.policyDocument allows %s on every resource (or iam:*); scope its statements to the actions and resources the job needs", [cred.name, concat(", ", words)])
}

# A session policy narrows the role to what it allows: one that allows everything narrows
# nothing, and hands the pod all of the role. (One rule over both documents, looked up by
# field, costs ~15% more allocations per evaluation: the two rules stay apart.)
deny contains lib.violation("admin-scoped-credential", cred.name, msg) if {
	some cred in input.credentials
	doc := cred.aws.sessionPolicy
	scopes := iam.admin_scopes(doc)
	count(scopes) > 0
	words := sort([iam.describe(s) | some s in scopes])
	msg := sprintf("credential %s: its aws.sessionPolicy allows %s on every resource (or iam:*), so it does not narrow the role; scope it to the actions and resources the job needs", [cred.name, concat(", ", words)])
}

deny contains lib.violation("admin-scoped-credential", cred.name, msg) if {
	some cred in input.credentials
	some role in object.get(cred.access, "roles", [])
	admin_role(role)
	msg := sprintf("credential %s holds the administrative role %q; use a role limited to what the job needs", [cred.name, role])
}

# AWS managed policies, by name or ARN.
admin_role(role) if {
	parts := split(role, "/")
	lower(parts[count(parts) - 1]) in {"administratoraccess", "poweruseraccess", "iamfullaccess"}
}

# GCP basic roles, Azure's administrative built-in roles, Kubernetes' cluster-admin.
admin_role(role) if lower(role) in {"roles/owner", "roles/editor", "owner", "contributor", "user access administrator", "cluster-admin"}

# GCP predefined *Admin roles, such as roles/storage.admin or roles/iam.securityAdmin.
admin_role(role) if {
	startswith(role, "roles/")
	endswith(lower(role), "admin")
}
