# credential-not-ready refuses a credential whose Ready condition is not True, or that has
# expired. A credential with no Ready condition (nothing checks it) is not refused, except an
# assumeRole credential: credgate has not minted its temporary credentials yet, or not for its
# current spec.
#
# The package and its helpers are internal to the rule: reserved (no user policy may declare
# it, so none can extend a helper) and not an API (user policies import data.credgate.lib).

# METADATA
# title: Credentials not ready or expired
# description: >-
#   Refuses a credential whose Ready condition is not True, or that has expired; and an
#   assumeRole credential credgate has not minted temporary credentials for, or not for its
#   current spec.
# custom:
#   id: credential-not-ready
#   enforcement: deny
#   scope: credential
package credgate.builtin.credential_not_ready

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
	msg := sprintf("credential %s has no temporary credentials yet: credgate refresher has not assumed role %s (is it running?); see kubectl describe credential %s", [cred.name, cred.aws.roleArn, cred.name])
}

# An assumeRole credential whose spec changed since it was minted would hand pods what the old
# spec minted (another role, a wider session policy) until the refresher catches up.
deny contains lib.violation("credential-not-ready", cred.name, msg) if {
	some cred in input.credentials
	object.get(cred.aws, "mode", "") == "assumeRole"
	some cond in object.get(cred.status, "conditions", [])
	cond.type == "Ready"
	cond.status == "True"
	object.get(cond, "observedGeneration", 0) != object.get(cred.status, "generation", 0)
	msg := sprintf("credential %s changed since its temporary credentials were minted, and credgate refresher has not minted them for the new spec yet (is it running?); see kubectl describe credential %s", [cred.name, cred.name])
}

has_ready_condition(cred) if {
	some cond in object.get(cred.status, "conditions", [])
	cond.type == "Ready"
}
