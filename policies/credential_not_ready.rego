# credential-not-ready refuses a credential whose Ready condition is not True, or that has
# expired. A credential with no Ready condition (nothing checks it) is not refused, except an
# assumeRole credential: credgate has not minted its temporary credentials yet.
package credgate.admission

import data.credgate.lib

deny contains lib.violation("credential-not-ready", cred.name, msg) if {
	some cred in input.credentials
	some cond in object.get(cred.status, "conditions", [])
	cond.type == "Ready"
	cond.status != "True"
	msg := sprintf("credential %s is not ready (%s: %s); see kubectl describe credential %s", [cred.name, object.get(cond, "reason", "unknown"), object.get(cond, "message", ""), cred.name])
}

deny contains lib.violation("credential-not-ready", cred.name, msg) if {
	some cred in input.credentials
	expires := object.get(cred.status, "expiresAt", "")
	expires != ""
	time.parse_rfc3339_ns(expires) <= time.now_ns()
	msg := sprintf("credential %s expired at %s; renew it (or its Secret) before using it", [cred.name, expires])
}

deny contains lib.violation("credential-not-ready", cred.name, msg) if {
	some cred in input.credentials
	object.get(cred.aws, "mode", "") == "assumeRole"
	not has_ready_condition(cred)
	msg := sprintf("credential %s has no temporary credentials yet: credgate's refresher has not assumed role %s (is credgate running with --aws-refresher?); see kubectl describe credential %s", [cred.name, cred.aws.roleArn, cred.name])
}

has_ready_condition(cred) if {
	some cond in object.get(cred.status, "conditions", [])
	cond.type == "Ready"
}
