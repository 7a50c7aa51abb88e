//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
	credpkg "github.com/credgate/credgate/credential"
)

// TestValidityAgreesWithTheAPIServer: one source of truth for a Credential's validity. Every
// case is created (dry run) on the real API server, which enforces the CRD of manifests/crd,
// and checked by credential.Validate (what `credgate eval` runs): both must reach the same
// verdict and name the same fields. The cases include those where a hand-written validator
// had drifted from the CRD (lengths, a Secret name the API server refuses).
func TestValidityAgreesWithTheAPIServer(t *testing.T) {
	ns := namespace(t)
	long := func(n int) string { return strings.Repeat("a", n) }
	ref := func(name string) *v1alpha1.SecretReference { return &v1alpha1.SecretReference{Name: name} }
	item := func(key, path string) v1alpha1.FileItem { return v1alpha1.FileItem{Key: key, Path: path} }
	roleARN := "arn:aws:iam::123456789012:role/train"
	tests := []struct {
		name string
		spec v1alpha1.CredentialSpec
	}{
		{"valid", v1alpha1.CredentialSpec{Type: v1alpha1.TypeWandB, SecretRef: ref("wandb")}},
		{"type omitted", v1alpha1.CredentialSpec{Env: []v1alpha1.EnvVar{{Name: "MODE", Value: new("fast")}}}},
		{"secretRef uppercase", v1alpha1.CredentialSpec{Type: v1alpha1.TypeWandB, SecretRef: ref("WandB")}},
		{"secretRef too long", v1alpha1.CredentialSpec{Type: v1alpha1.TypeWandB, SecretRef: ref(long(254))}},
		{"secretRef empty", v1alpha1.CredentialSpec{Type: v1alpha1.TypeWandB, SecretRef: ref("")}},
		{"env name 256", v1alpha1.CredentialSpec{Env: []v1alpha1.EnvVar{{Name: long(256), Value: new("v")}}}},
		{"env name 257", v1alpha1.CredentialSpec{Env: []v1alpha1.EnvVar{{Name: long(257), Value: new("v")}}}},
		{"env key 254", v1alpha1.CredentialSpec{SecretRef: ref("s"), Env: []v1alpha1.EnvVar{{Name: "A", Key: new(long(254))}}}},
		{"env name not an identifier", v1alpha1.CredentialSpec{Env: []v1alpha1.EnvVar{{Name: "9LIVES", Value: new("v")}}}},
		{"env key and value", v1alpha1.CredentialSpec{SecretRef: ref("s"), Env: []v1alpha1.EnvVar{{Name: "A", Key: new("k"), Value: new("v")}}}},
		{"env duplicate", v1alpha1.CredentialSpec{Env: []v1alpha1.EnvVar{{Name: "A", Value: new("1")}, {Name: "A", Value: new("2")}}}},
		{"env key without secretRef", v1alpha1.CredentialSpec{Env: []v1alpha1.EnvVar{{Name: "A", Key: new("k")}}}},
		{"overridable secret", v1alpha1.CredentialSpec{SecretRef: ref("s"), Env: []v1alpha1.EnvVar{{Name: "A", Key: new("k"), Overridable: true}}}},
		{"too many env", v1alpha1.CredentialSpec{Env: func() []v1alpha1.EnvVar {
			var env []v1alpha1.EnvVar
			for i := range 65 {
				env = append(env, v1alpha1.EnvVar{Name: "V" + strings.Repeat("X", i), Value: new("v")})
			}
			return env
		}()}},
		{"mountPath 1025", v1alpha1.CredentialSpec{SecretRef: ref("s"), Files: &v1alpha1.Files{MountPath: "/" + long(1024)}}},
		{"mountPath a shell splits", v1alpha1.CredentialSpec{SecretRef: ref("s"), Files: &v1alpha1.Files{MountPath: "/a b;id"}}},
		{"item path escapes", v1alpha1.CredentialSpec{SecretRef: ref("s"), Files: &v1alpha1.Files{Items: []v1alpha1.FileItem{item("k", "x/../../etc")}}}},
		{"item path absolute", v1alpha1.CredentialSpec{SecretRef: ref("s"), Files: &v1alpha1.Files{Items: []v1alpha1.FileItem{item("k", "/etc/k")}}}},
		{"item key duplicate", v1alpha1.CredentialSpec{SecretRef: ref("s"), Files: &v1alpha1.Files{Items: []v1alpha1.FileItem{item("k", "a"), item("k", "b")}}}},
		{"item mode 0777", v1alpha1.CredentialSpec{SecretRef: ref("s"), Files: &v1alpha1.Files{Items: []v1alpha1.FileItem{{Key: "k", Path: "k", Mode: new(int32(0o777))}}}}},
		{"item mode 01000", v1alpha1.CredentialSpec{SecretRef: ref("s"), Files: &v1alpha1.Files{Items: []v1alpha1.FileItem{{Key: "k", Path: "k", Mode: new(int32(0o1000))}}}}},
		{"kaggle file renamed", v1alpha1.CredentialSpec{Type: v1alpha1.TypeKaggle, SecretRef: ref("s"), Files: &v1alpha1.Files{Items: []v1alpha1.FileItem{item("kaggle.json", "k.json")}}}},
		{"kaggle file in a folder", v1alpha1.CredentialSpec{Type: v1alpha1.TypeKaggle, SecretRef: ref("s"), Files: &v1alpha1.Files{Items: []v1alpha1.FileItem{item("kaggle.json", "d/kaggle.json")}}}},
		{"unknown type", v1alpha1.CredentialSpec{Type: "vault", SecretRef: ref("s")}},
		{"unknown access level", v1alpha1.CredentialSpec{Type: v1alpha1.TypeWandB, SecretRef: ref("s"), Access: v1alpha1.Access{Level: "root"}}},
		{"s3-compatible without endpoint", v1alpha1.CredentialSpec{Type: v1alpha1.TypeS3Compatible, SecretRef: ref("s")}},
		{"database without kind", v1alpha1.CredentialSpec{Type: v1alpha1.TypeDatabase, SecretRef: ref("s")}},
		{"aws endpoint not a URL", v1alpha1.CredentialSpec{Type: v1alpha1.TypeAWS, SecretRef: ref("s"), AWS: &v1alpha1.AWS{Endpoint: "minio:9000", Region: "EU 1"}}},
		{"assumeRole", v1alpha1.CredentialSpec{Type: v1alpha1.TypeAWS, AWS: &v1alpha1.AWS{Mode: v1alpha1.AWSAssumeRole, RoleARN: roleARN,
			SourceSecretRef: ref("keys"), DurationSeconds: new(int32(900)), SessionPolicy: &apiextensionsv1.JSON{Raw: []byte(`{"Statement":[]}`)}}}},
		{"assumeRole bad values", v1alpha1.CredentialSpec{Type: v1alpha1.TypeAWS, AWS: &v1alpha1.AWS{Mode: v1alpha1.AWSAssumeRole, RoleARN: "trainer",
			SourceSecretRef: ref("keys"), ExternalID: "x", DurationSeconds: new(int32(60)), Verify: &v1alpha1.AWSVerify{Bucket: "No_Bucket"}}}},
		{"assumeRole with tenant keys", v1alpha1.CredentialSpec{Type: v1alpha1.TypeAWS, SecretRef: ref("s"), AWS: &v1alpha1.AWS{Mode: v1alpha1.AWSAssumeRole, RoleARN: roleARN, SourceSecretRef: ref("keys")}}},
		{"webIdentity on gcp", v1alpha1.CredentialSpec{Type: v1alpha1.TypeGCP, AWS: &v1alpha1.AWS{Mode: v1alpha1.AWSWebIdentity, RoleARN: roleARN}}},
		{"webIdentity lifetime", v1alpha1.CredentialSpec{Type: v1alpha1.TypeAWS, AWS: &v1alpha1.AWS{Mode: v1alpha1.AWSWebIdentity, RoleARN: roleARN,
			WebIdentity: &v1alpha1.WebIdentity{ExpirationSeconds: new(int64(60))}}}},
	}
	names := map[string]string{"name 64 characters": long(64), "name uppercase": "WandB", "name 63 characters": long(63)}
	for name := range names {
		tests = append(tests, struct {
			name string
			spec v1alpha1.CredentialSpec
		}{name, v1alpha1.CredentialSpec{Type: v1alpha1.TypeWandB, SecretRef: ref("wandb")}})
	}
	admitted := 0
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := names[tt.name]
			if name == "" {
				name = fmt.Sprintf("case-%d", i)
			}
			cred := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: tt.spec}
			eval := credpkg.Validate(cred.DeepCopy())
			err := c.Client.Create(t.Context(), asApplied(t, cred), client.DryRunAll)
			var server []string
			if err != nil {
				var status *apierrors.StatusError
				if !errors.As(err, &status) || status.ErrStatus.Reason != metav1.StatusReasonInvalid {
					t.Fatalf("dry-run create: %v, want success or Invalid", err)
				}
				for _, cause := range status.ErrStatus.Details.Causes {
					server = append(server, cause.Field)
				}
			} else {
				admitted++
			}
			if (err == nil) != (len(eval) == 0) {
				t.Fatalf("verdicts differ:\n  API server: %v\n  credential.Validate: %q", err, eval)
			}
			if got, want := fields(eval), normalize(server); !slices.Equal(got, want) {
				t.Errorf("fields differ:\n  API server: %q (%v)\n  credential.Validate: %q (%q)", want, err, got, eval)
			}
		})
	}
	if admitted == 0 || admitted == len(tests) {
		t.Errorf("%d of %d cases admitted: the table must hold both valid and invalid Credentials", admitted, len(tests))
	}
}

// asApplied is cred as the YAML a user applies: a type left out is absent, not "" (the Go
// type cannot omit it; a typed client would send "" and be refused).
func asApplied(t *testing.T, cred *v1alpha1.Credential) *unstructured.Unstructured {
	data, err := json.Marshal(cred)
	if err != nil {
		t.Fatal(err)
	}
	u := &unstructured.Unstructured{}
	if err := json.Unmarshal(data, &u.Object); err != nil {
		t.Fatal(err)
	}
	u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind("Credential"))
	if cred.Spec.Type == "" {
		unstructured.RemoveNestedField(u.Object, "spec", "type")
	}
	return u
}

// fields returns the sorted, distinct field paths of Validate's messages ("path: detail").
func fields(problems []string) []string {
	var out []string
	for _, p := range problems {
		out = append(out, strings.SplitN(p, ": ", 2)[0])
	}
	return normalize(out)
}

func normalize(paths []string) []string {
	out := slices.Clone(paths)
	for i, p := range out {
		if p == "" {
			out[i] = "<nil>" // the API server's root path, as field.Error prints it
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}
