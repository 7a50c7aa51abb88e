package credential

import (
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credgate/credgate/api/v1alpha1"
)

// A policy document over the limit makes the Credential invalid: policies never evaluate it.
func TestValidateBoundsPolicyDocuments(t *testing.T) {
	big := []byte(`{"Statement":[` + strings.Repeat(`{"Effect":"Allow","Action":"s3:GetObject","Resource":"*"},`, 400) + `{}]}`)
	c := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "c"}, Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeGeneric,
		Access: v1alpha1.Access{PolicyDocument: &apiextensionsv1.JSON{Raw: big}}}}
	if errs := Validate(c); len(errs) != 1 || !strings.Contains(errs[0], "policyDocument is") {
		t.Errorf("Validate: %q", errs)
	}
	c.Spec.Access.PolicyDocument.Raw = big[:0]
	c.Spec.Access.PolicyDocument = &apiextensionsv1.JSON{Raw: []byte(`{"Statement":[]}`)}
	if errs := Validate(c); len(errs) != 0 {
		t.Errorf("Validate: %q", errs)
	}
}
