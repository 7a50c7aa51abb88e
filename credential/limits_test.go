package credential

import (
	"errors"
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

// Admission checks each revision of a Credential once: a second Resolve of the same revision
// is answered from memory, and a new revision is checked again.
func TestValidatedRemembersRevisions(t *testing.T) {
	c := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ml", UID: "u1", ResourceVersion: "1"},
		Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeWandB}}
	if errs := validated(c); len(errs) == 0 {
		t.Fatal("a wandb Credential without secretRef passed")
	}
	c.Spec.SecretRef = &v1alpha1.SecretReference{Name: "wandb"}
	if errs := validated(c); len(errs) == 0 {
		t.Error("the same revision was checked again: nothing was remembered")
	}
	c.ResourceVersion = "2"
	if errs := validated(c); len(errs) != 0 {
		t.Errorf("a new revision: %q, want it checked afresh and valid", errs)
	}
}
