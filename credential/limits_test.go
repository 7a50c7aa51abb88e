package credential

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credgate/credgate/api/v1alpha1"
)

// A policy document over the limit makes the Credential invalid at admission: the API server
// accepts it (the CRD cannot bound a schemaless document), policies never evaluate it.
func TestResolveBoundsPolicyDocuments(t *testing.T) {
	big := []byte(`{"Statement":[` + strings.Repeat(`{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"},`, 400) + `{}]}`)
	c := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeGeneric,
		Access: v1alpha1.Access{PolicyDocument: &apiextensionsv1.JSON{Raw: big}}}}
	if errs := Validate(c); len(errs) != 0 {
		t.Errorf("Validate: %q, want none: the API server accepts it", errs)
	}
	if _, err := Resolve(c); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "policyDocument is") {
		t.Errorf("Resolve: %v, want the policy document refused", err)
	}
	c.Spec.Access.PolicyDocument = &apiextensionsv1.JSON{Raw: []byte(`{"Statement":[]}`)}
	if _, err := Resolve(c); err != nil {
		t.Errorf("Resolve: %v", err)
	}
}

// Admission checks each generation of a Credential once: a second Resolve of the same
// generation (a status write, new annotations: a new resourceVersion) is answered from
// memory, and a new generation (a spec change) is checked again.
func TestValidatedRemembersGenerations(t *testing.T) {
	c := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ml", UID: "u1", ResourceVersion: "1", Generation: 1},
		Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeWandB}}
	if errs := validated(c); len(errs) == 0 {
		t.Fatal("a wandb Credential without secretRef passed")
	}
	c.Spec.SecretRef = &v1alpha1.SecretReference{Name: "wandb"}
	c.ResourceVersion = "2"
	if errs := validated(c); len(errs) == 0 {
		t.Error("the same generation was checked again: nothing was remembered")
	}
	c.Generation = 2
	if errs := validated(c); len(errs) != 0 {
		t.Errorf("a new generation: %q, want it checked afresh and valid", errs)
	}
}

// A Credential larger than any the CRD allows (served by a cluster with an older CRD) is
// refused without running the validators over it.
func TestValidatedRefusesOversizedCredentials(t *testing.T) {
	roles := make([]string, 30000)
	for i := range roles {
		roles[i] = fmt.Sprintf("roles/custom.viewer%d", i)
	}
	c := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ml", UID: "big", Generation: 1},
		Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeGCP, SecretRef: &v1alpha1.SecretReference{Name: "s"}, Access: v1alpha1.Access{Roles: roles}}}
	errs := validated(c)
	if len(errs) != 1 || !strings.Contains(errs[0], "credgate checks at most") {
		t.Errorf("validated = %q", errs)
	}
	c.Spec.Access.Roles = roles[:65]
	if errs := Validate(c); len(errs) != 2 || !strings.Contains(errs[1], "spec.access.roles: Too many: 65: must have at most 64 items") {
		t.Errorf("Validate = %q", errs)
	}
}

// The cost of checking one Credential the cache has not seen (a new generation).
func BenchmarkValidate(b *testing.B) {
	c := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "s3", Namespace: "ml"}, Spec: v1alpha1.CredentialSpec{
		Type: v1alpha1.TypeAWS, AWS: &v1alpha1.AWS{Mode: v1alpha1.AWSAssumeRole, RoleARN: "arn:aws:iam::123456789012:role/train",
			SourceSecretRef: &v1alpha1.SecretReference{Name: "keys"}, SessionPolicy: &apiextensionsv1.JSON{Raw: []byte(`{"Statement":[]}`)}},
		Env: []v1alpha1.EnvVar{{Name: "AWS_REGION", Value: new("eu-west-1")}}}}
	b.ReportAllocs()
	for b.Loop() {
		if errs := Validate(c); len(errs) != 0 {
			b.Fatal(errs)
		}
	}
}

// As written, `type: ""` is refused, as the API server refuses it; left out, it defaults.
func TestValidateJSONChecksWhatWasWritten(t *testing.T) {
	written := []byte(`{"metadata":{"name":"x"},"spec":{"type":"","env":[{"name":"A","value":"v"}]}}`)
	if errs := ValidateJSON(written); len(errs) == 0 || !strings.Contains(strings.Join(errs, "\n"), `spec.type: Unsupported value: ""`) {
		t.Errorf("ValidateJSON(type: \"\") = %q", errs)
	}
	omitted := []byte(`{"metadata":{"name":"x"},"spec":{"env":[{"name":"A","value":"v"}]}}`)
	if errs := ValidateJSON(omitted); len(errs) != 0 {
		t.Errorf("ValidateJSON(no type) = %q", errs)
	}
	if errs := ValidateJSON([]byte(`[]`)); len(errs) == 0 {
		t.Error("a JSON array passed as a Credential")
	}
}
