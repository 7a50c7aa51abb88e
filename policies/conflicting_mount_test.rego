package credgate.builtin_test

import data.credgate.test as t

test_same_mount_path if {
	a := t.cred("a", {"mountPath": "/etc/creds"})
	b := t.cred("b", {"mountPath": "/etc/creds"})
	["conflicting-mount", "b"] in t.denied(t.input_for(t.trainer, [a, b]))
}

test_nested_mount_paths if {
	a := t.cred("a", {"mountPath": "/root/.config"})
	b := t.cred("b", {"mountPath": "/root/.config/gcloud"})
	["conflicting-mount", "b"] in t.denied(t.input_for(t.trainer, [a, b]))
}

test_sibling_paths_are_fine if {
	a := t.cred("a", {"mountPath": "/var/run/secrets/credgate/a"})
	b := t.cred("b", {"mountPath": "/var/run/secrets/credgate/ab"})
	count(t.denied(t.input_for(t.trainer, [a, b]))) == 0
}

# A credential that mounts nothing (variables only) overlaps no path, before or after one that
# mounts files.
test_credential_without_files_is_fine if {
	env_only := t.cred("env-only", {})
	files := t.cred("files", {"mountPath": "/etc/creds"})
	count(t.denied(t.input_for(t.trainer, [env_only, files]))) == 0
	count(t.denied(t.input_for(t.trainer, [files, env_only]))) == 0
}

test_container_mount_overlaps if {
	p := t.pod([object.union(t.container("trainer", []), {"volumeMounts": [{"name": "home", "mountPath": "/root/"}]})])
	c := t.cred("ssh", {"mountPath": "/root/.ssh"})
	["conflicting-mount", "ssh"] in t.denied(t.input_for(p, [c]))
}

test_own_mount_is_not_a_conflict if {
	p := t.pod([object.union(t.container("trainer", []), {"volumeMounts": [{"name": "credgate-ssh", "mountPath": "/root/.ssh", "readOnly": true}]})])
	c := t.cred("ssh", {"mountPath": "/root/.ssh"})
	count(t.denied(t.input_for(p, [c]))) == 0
}

test_reserved_volume_name if {
	p := object.union(t.trainer, {"spec": {"volumes": [{"name": "credgate-cache", "emptyDir": {}}]}})
	["conflicting-mount", ""] in t.denied(t.input_for(p, []))
}

test_own_volume_is_not_reserved_use if {
	p := object.union(t.trainer, {"spec": {"volumes": [{"name": "credgate-gcs", "secret": {"secretName": "gcs-secret"}}]}})
	c := t.cred("gcs", {"mountPath": "/var/run/secrets/credgate/gcs"})
	count(t.denied(t.input_for(p, [c]))) == 0
}

test_container_mount_inside_credential_mount if {
	p := t.pod([object.union(t.container("trainer", []), {"volumeMounts": [{"name": "cfg", "mountPath": "/root/.ssh/config.d"}]})])
	c := t.cred("ssh", {"mountPath": "/root/.ssh"})
	["conflicting-mount", "ssh"] in t.denied(t.input_for(p, [c]))
}

test_container_mount_at_root if {
	p := t.pod([object.union(t.container("trainer", []), {"volumeMounts": [{"name": "rootfs", "mountPath": "/"}]})])
	c := t.cred("ssh", {"mountPath": "/root/.ssh"})
	["conflicting-mount", "ssh"] in t.denied(t.input_for(p, [c]))
}

test_web_identity_token_volume_is_credgates if {
	c := t.cred("irsa", {"secretRef": null, "mountPath": "/var/run/secrets/credgate/irsa", "token": {"path": "/var/run/secrets/credgate/irsa/token", "audience": "sts.amazonaws.com", "expirationSeconds": 3600}})
	vol := {"name": "credgate-irsa", "projected": {"sources": [{"serviceAccountToken": {"audience": "sts.amazonaws.com", "expirationSeconds": 3600, "path": "token"}}]}}
	p := object.union(t.trainer, {"spec": {"containers": t.trainer.spec.containers, "volumes": [vol]}})
	not ["conflicting-mount", ""] in t.denied(t.input_for(p, [c]))
	other := object.union(vol, {"projected": {"sources": [{"serviceAccountToken": {"audience": "vault", "path": "token"}}]}})
	p2 := object.union(t.trainer, {"spec": {"containers": t.trainer.spec.containers, "volumes": [other]}})
	["conflicting-mount", ""] in t.denied(t.input_for(p2, [c]))
}

# A workload-identity-federation volume (a token, and the configuration from credgate's
# annotation) is credgate's own; one reading another annotation is not.
federation_volume(path) := {"name": "credgate-gcs", "projected": {"sources": [
	{"serviceAccountToken": {"audience": "https://iam.googleapis.com/x", "path": "token"}},
	{"downwardAPI": {"items": [{"path": "credential-configuration.json", "fieldRef": {"fieldPath": path}}]}},
]}}

test_federation_volume_is_credgate_own if {
	cred := t.cred("gcs", {"volumeName": "credgate-gcs", "token": {"path": "token", "audience": "https://iam.googleapis.com/x", "expirationSeconds": 3600}})
	own := object.union(t.trainer, {"spec": {"volumes": [federation_volume("metadata.annotations['credgate.dev/credgate-gcs']")]}})
	not ["conflicting-mount", ""] in t.denied(t.input_for(own, [cred]))
	theirs := object.union(t.trainer, {"spec": {"volumes": [federation_volume("metadata.annotations['team']")]}})
	["conflicting-mount", ""] in t.denied(t.input_for(theirs, [cred]))

	# Another credgate.dev/ annotation, of the tenant's making: not credgate's configuration.
	forged := object.union(t.trainer, {"spec": {"volumes": [federation_volume("metadata.annotations['credgate.dev/evil']")]}})
	["conflicting-mount", ""] in t.denied(t.input_for(forged, [cred]))
}
