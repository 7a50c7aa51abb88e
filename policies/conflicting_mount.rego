# conflicting-mount refuses a pod in which two credentials mount files at the same or nested
# paths, a credential's mount overlaps one the container already has, or a pod volume uses a
# name credgate reserves (credgate-*).
#
# The package and its helpers are internal to the rule: reserved (no user policy may declare
# it, so none can extend a helper) and not an API (user policies import data.credgate.lib).

# METADATA
# title: Mounts that overlap
# description: >-
#   Refuses a pod in which two credentials mount files at the same or nested paths, a
#   credential's mount overlaps one a target container already has, or a pod volume uses a name
#   credgate reserves (credgate-*).
# custom:
#   id: conflicting-mount
#   enforcement: deny
package credgate.builtin.conflicting_mount

import data.credgate.lib

deny contains v if {
	some v in between_credentials
}

deny contains lib.violation("conflicting-mount", cred.name, msg) if {
	some cred in with_files
	some c in lib.target_containers
	some m in object.get(c, "volumeMounts", [])
	m.name != cred.volumeName
	lib.nested(m.mountPath, cred.mountPath)
	msg := sprintf("container %q already mounts %s at %s, which overlaps credential %s's files at %s; move one of them", [c.name, m.name, m.mountPath, cred.name, cred.mountPath])
}

# with_files are the requested credentials that mount files.
with_files contains cred if {
	some cred in input.credentials
	cred.mountPath != ""
}

# between_credentials are the violations among the requested credentials alone: two whose
# files lie at the same or nested paths.
between_credentials contains lib.violation("conflicting-mount", b.name, msg) if {
	some i, a in input.credentials
	a.mountPath != ""
	some j, b in input.credentials
	i < j
	b.mountPath != ""
	lib.nested(a.mountPath, b.mountPath)
	msg := sprintf("credentials %s (%s) and %s (%s) mount at the same or nested paths; give one of them another files.mountPath", [a.name, a.mountPath, b.name, b.mountPath])
}

deny contains lib.violation("conflicting-mount", "", msg) if {
	some v in object.get(input.pod.spec, "volumes", [])
	startswith(v.name, "credgate-")
	not own_volume(v)
	msg := sprintf("the pod has a volume named %q; names starting with credgate- are reserved for credgate's credential volumes: rename it", [v.name])
}

own_volume(v) if {
	some cred in input.credentials
	v.name == cred.volumeName
	v.secret.secretName == cred.secretRef.name
}

# A webIdentity credential's volume is a projected service-account token.
own_volume(v) if {
	some cred in input.credentials
	v.name == cred.volumeName
	cred.token != null
	[src] := v.projected.sources
	src.serviceAccountToken.audience == cred.token.audience
}

# A workload-identity-federation credential's adds its configuration, projected from the
# annotation credgate writes it to, credgate.dev/<volume name>: no other.
own_volume(v) if {
	some cred in input.credentials
	v.name == cred.volumeName
	cred.token != null
	[src, config] := v.projected.sources
	src.serviceAccountToken.audience == cred.token.audience
	[item] := config.downwardAPI.items
	item.fieldRef.fieldPath == sprintf("metadata.annotations['credgate.dev/%s']", [cred.volumeName])
	item.path == "credential-configuration.json"
}
