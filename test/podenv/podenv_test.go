package podenv_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credgate/credgate/test/podenv"
)

type file struct {
	Content string
	Mode    fs.FileMode
}

func secretEnv(name, secret, key string, optional bool) corev1.EnvVar {
	ref := &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key}
	if optional {
		ref.Optional = new(true)
	}
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: ref}}
}

func secretVolume(name, secret string, defaultMode *int32, items ...corev1.KeyToPath) corev1.Volume {
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
		SecretName: secret, DefaultMode: defaultMode, Items: items}}}
}

func TestMaterialise(t *testing.T) {
	creds := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "creds"},
		Data:       map[string][]byte{"token": []byte("tok-123"), "key.json": []byte(`{"k":1}`)},
		StringData: map[string]string{"user": "alice"},
	}
	tests := []struct {
		name      string
		spec      corev1.PodSpec
		container string
		// wantEnv and wantFiles name paths under the root as {root}.
		wantEnv   map[string]string
		wantFiles map[string]file
		wantErr   string
	}{
		{
			name: "literal, secret key, StringData, optional missing key left unset",
			spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Env: []corev1.EnvVar{
				{Name: "LITERAL", Value: "x"},
				secretEnv("TOKEN", "creds", "token", false),
				secretEnv("USER", "creds", "user", false),
				secretEnv("MAYBE", "creds", "absent", true),
				secretEnv("MAYBE_SECRET", "no-such-secret", "k", true),
			}}}},
			container: "app",
			wantEnv:   map[string]string{"LITERAL": "x", "TOKEN": "tok-123", "USER": "alice"},
			wantFiles: map[string]file{},
		},
		{
			name: "items with key to path and mode; defaultMode for an item without mode; path values rewritten",
			spec: corev1.PodSpec{
				Volumes: []corev1.Volume{secretVolume("v", "creds", new(int32(0o440)),
					corev1.KeyToPath{Key: "key.json", Path: "sub/sa.json", Mode: new(int32(0o400))},
					corev1.KeyToPath{Key: "token", Path: "token"})},
				Containers: []corev1.Container{{Name: "app",
					VolumeMounts: []corev1.VolumeMount{{Name: "v", MountPath: "/etc/creds", ReadOnly: true}},
					Env: []corev1.EnvVar{
						{Name: "FILE", Value: "/etc/creds/sub/sa.json"},
						{Name: "DIR", Value: "/etc/creds"},
						{Name: "SIBLING", Value: "/etc/credsX/a"},
						{Name: "OUTSIDE", Value: "/etc/passwd"},
						{Name: "RELATIVE", Value: "etc/creds/token"},
					}}},
			},
			container: "app",
			wantEnv: map[string]string{"FILE": "{root}/etc/creds/sub/sa.json", "DIR": "{root}/etc/creds",
				"SIBLING": "/etc/credsX/a", "OUTSIDE": "/etc/passwd", "RELATIVE": "etc/creds/token"},
			wantFiles: map[string]file{
				"etc/creds/sub/sa.json": {`{"k":1}`, 0o400},
				"etc/creds/token":       {"tok-123", 0o440},
			},
		},
		{
			name: "no items mounts every key with the default mode 0644, in an init container",
			spec: corev1.PodSpec{
				Volumes: []corev1.Volume{secretVolume("v", "creds", nil), {Name: "scratch",
					VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
				InitContainers: []corev1.Container{{Name: "init", VolumeMounts: []corev1.VolumeMount{
					{Name: "v", MountPath: "/s"}, {Name: "scratch", MountPath: "/tmp/scratch"}}}},
				Containers: []corev1.Container{{Name: "app"}},
			},
			container: "init",
			wantEnv:   map[string]string{},
			wantFiles: map[string]file{
				"s/key.json": {`{"k":1}`, 0o644},
				"s/token":    {"tok-123", 0o644},
				"s/user":     {"alice", 0o644},
			},
		},
		{
			name: "only the named container's mounts are written",
			spec: corev1.PodSpec{
				Volumes: []corev1.Volume{secretVolume("v", "creds", nil)},
				Containers: []corev1.Container{{Name: "app"},
					{Name: "sidecar", VolumeMounts: []corev1.VolumeMount{{Name: "v", MountPath: "/s"}}}},
			},
			container: "app",
			wantEnv:   map[string]string{},
			wantFiles: map[string]file{},
		},
		{
			name: "missing key that is not optional",
			spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app",
				Env: []corev1.EnvVar{secretEnv("X", "creds", "absent", false)}}}},
			container: "app",
			wantErr:   `env X: secret "creds" has no key "absent"`,
		},
		{
			name: "missing Secret that is not optional",
			spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app",
				Env: []corev1.EnvVar{secretEnv("X", "nope", "k", false)}}}},
			container: "app",
			wantErr:   `env X: secret "nope" not found`,
		},
		{
			name: "missing item key",
			spec: corev1.PodSpec{
				Volumes: []corev1.Volume{secretVolume("v", "creds", nil, corev1.KeyToPath{Key: "absent", Path: "a"})},
				Containers: []corev1.Container{{Name: "app",
					VolumeMounts: []corev1.VolumeMount{{Name: "v", MountPath: "/s"}}}},
			},
			container: "app",
			wantErr:   `mount /s: secret "creds" has no key "absent"`,
		},
		{
			name: "item path escaping the mount",
			spec: corev1.PodSpec{
				Volumes: []corev1.Volume{secretVolume("v", "creds", nil, corev1.KeyToPath{Key: "token", Path: "../token"})},
				Containers: []corev1.Container{{Name: "app",
					VolumeMounts: []corev1.VolumeMount{{Name: "v", MountPath: "/s"}}}},
			},
			container: "app",
			wantErr:   `may not contain '..'`,
		},
		{
			name: "unsupported env source",
			spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Env: []corev1.EnvVar{{Name: "NODE",
				ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.nodeName"}}}}}}},
			container: "app",
			wantErr:   "only value and valueFrom.secretKeyRef are supported",
		},
		{
			name:      "unknown container",
			spec:      corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}},
			container: "nope",
			wantErr:   `pod has no container "nope"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			got, err := podenv.Materialise(&tt.spec, tt.container, []*corev1.Secret{creds}, root)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Materialise() error = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Materialise() error = %v", err)
			}
			wantEnv := make(map[string]string, len(tt.wantEnv))
			for k, v := range tt.wantEnv {
				wantEnv[k] = strings.ReplaceAll(v, "{root}", root)
			}
			if diff := cmp.Diff(wantEnv, got.Env); diff != "" {
				t.Errorf("Env mismatch (-want +got):\n%s", diff)
			}
			gotFiles := make(map[string]file, len(got.Files))
			for _, p := range got.Files {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				st, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				rel, err := filepath.Rel(root, p)
				if err != nil {
					t.Fatal(err)
				}
				gotFiles[filepath.ToSlash(rel)] = file{string(b), st.Mode().Perm()}
			}
			if diff := cmp.Diff(tt.wantFiles, gotFiles); diff != "" {
				t.Errorf("files mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHostPath(t *testing.T) {
	root := t.TempDir()
	spec := corev1.PodSpec{
		Volumes: []corev1.Volume{secretVolume("v", "creds", nil)},
		Containers: []corev1.Container{{Name: "app",
			VolumeMounts: []corev1.VolumeMount{{Name: "v", MountPath: "/root/.ssh/"}}}},
	}
	c, err := podenv.Materialise(&spec, "app", []*corev1.Secret{{ObjectMeta: metav1.ObjectMeta{Name: "creds"}}}, root)
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]string{
		"/root/.ssh":             filepath.Join(root, "root/.ssh"),
		"/root/.ssh/id_ed25519":  filepath.Join(root, "root/.ssh/id_ed25519"),
		"/root/.ssh/../.ssh/k":   filepath.Join(root, "root/.ssh/k"),
		"/root/.sshd/id_ed25519": "/root/.sshd/id_ed25519",
		"/root/x/../.ssh-other":  "/root/x/../.ssh-other",
		"id_ed25519":             "id_ed25519",
	}
	for in, want := range tests {
		t.Run(in, func(t *testing.T) {
			if got := c.HostPath(in); got != want {
				t.Errorf("HostPath(%q) = %q, want %q", in, got, want)
			}
		})
	}
}

// TestMaterialiseRebasesPathsInFiles: a mounted file naming a path inside a mount (an AWS
// config file's credential_process) names where that path was written; materialising again
// replaces read-only files, as the kubelet does when the Secret changes.
func TestMaterialiseRebasesPathsInFiles(t *testing.T) {
	spec := &corev1.PodSpec{
		Containers: []corev1.Container{{Name: "c", VolumeMounts: []corev1.VolumeMount{{Name: "aws", MountPath: "/var/run/aws"}}}},
		Volumes:    []corev1.Volume{secretVolume("aws", "aws", new(int32(0o400)))},
	}
	secret := func(token string) []*corev1.Secret {
		return []*corev1.Secret{{ObjectMeta: metav1.ObjectMeta{Name: "aws"}, Data: map[string][]byte{
			"config":           []byte("credential_process = /bin/cat /var/run/aws/credentials.json\n"),
			"credentials.json": []byte(token),
		}}}
	}
	root := t.TempDir()
	if _, err := podenv.Materialise(spec, "c", secret("one"), root); err != nil {
		t.Fatal(err)
	}
	config, err := os.ReadFile(filepath.Join(root, "var/run/aws/config"))
	if err != nil {
		t.Fatal(err)
	}
	want := "credential_process = /bin/cat " + filepath.Join(root, "var/run/aws/credentials.json") + "\n"
	if string(config) != want {
		t.Errorf("config = %q, want %q", config, want)
	}
	if _, err := podenv.Materialise(spec, "c", secret("two"), root); err != nil {
		t.Fatalf("materialise again: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "var/run/aws/credentials.json")); err != nil || string(b) != "two" {
		t.Errorf("after the Secret changed: %q, %v", b, err)
	}
}
