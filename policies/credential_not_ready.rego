# credential-not-ready refuses a credential whose Ready condition is not True, or that has
# expired. A credential with no Ready condition (nothing checks it) is not refused, except one
# whose credentials credgate refresher mints (aws mode assumeRole, gcp mode impersonation): it
# has not minted them yet, or not for the credential's current spec.
#
# The package and its helpers are internal to the rule: reserved (no user policy may declare
# it, so none can extend a helper) and not an API (user policies import data.credgate.lib).

# METADATA
# title: Credentials not ready or expired
# description: >-
#   Refuses a credential whose Ready condition is not True, or that has expired; and a
#   credential whose credentials credgate refresher mints (an aws assumeRole credential's
#   temporary credentials, a gcp impersonation credential's access token) that it has not
#   minted yet, or not for its current spec.
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
	r := refreshed(cred)
	not has_ready_condition(cred)
	msg := sprintf("credential %s has no %s yet: credgate refresher has not %s (is it running?); see kubectl describe credential %s", [cred.name, r.minted, r.minting, cred.name])
}

# A refreshed credential whose spec changed since it was minted would hand pods what the old
# spec minted (another role or service account, a wider session policy or other scopes) until
# the refresher catches up.
deny contains lib.violation("credential-not-ready", cred.name, msg) if {
	some cred in input.credentials
	r := refreshed(cred)
	some cond in object.get(cred.status, "conditions", [])
	cond.type == "Ready"
	cond.status == "True"
	object.get(cond, "observedGeneration", 0) != object.get(cred.status, "generation", 0)
	msg := sprintf("credential %s changed since credgate refresher minted its %s, and the refresher has not caught up with its new spec yet (is it running?); see kubectl describe credential %s", [cred.name, r.minted, cred.name])
}

# refreshed(cred) describes a credential whose credentials credgate refresher mints and keeps
# in its managed Secret, per cloud, for messages: what it mints (minted) and what minting them
# takes (minting). It is undefined for every other credential.
refreshed(cred) := {"minted": "temporary credentials", "minting": sprintf("assumed role %s", [cred.aws.roleArn])} if {
	cred.aws.mode == "assumeRole"
}

refreshed(cred) := {"minted": "access token", "minting": sprintf("minted an access token for service account %s", [cred.gcp.serviceAccountEmail])} if {
	cred.gcp.mode == "impersonation"
}

has_ready_condition(cred) if {
	some cond in object.get(cred.status, "conditions", [])
	cond.type == "Ready"
}
