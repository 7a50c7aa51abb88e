package policies

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
)

// TestInputAppliesAWSDefaults: an aws Credential without spec.aws reaches policies as the API
// server stores it, mode static, so that a rule testing aws.mode == "static" sees plain keys;
// a type without AWS options keeps an empty aws object.
func TestInputAppliesAWSDefaults(t *testing.T) {
	for _, tc := range []struct {
		typ      v1alpha1.CredentialType
		aws      *v1alpha1.AWS
		wantMode string // "" for no mode at all
	}{
		{typ: v1alpha1.TypeAWS, wantMode: "static"},
		{typ: v1alpha1.TypeS3Compatible, aws: &v1alpha1.AWS{Endpoint: "https://s3.example"}, wantMode: "static"},
		{typ: v1alpha1.TypeAWS, aws: &v1alpha1.AWS{Mode: v1alpha1.AWSWebIdentity, RoleARN: "arn:aws:iam::1:role/x"}, wantMode: "webIdentity"},
		{typ: v1alpha1.TypeHuggingFace},
	} {
		t.Run(string(tc.typ), func(t *testing.T) {
			c := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ml"},
				Spec: v1alpha1.CredentialSpec{Type: tc.typ, AWS: tc.aws}}
			if tc.aws == nil || tc.aws.Mode != v1alpha1.AWSWebIdentity {
				c.Spec.SecretRef = &v1alpha1.SecretReference{Name: "s"}
			}
			r, err := credential.Resolve(c)
			if err != nil {
				t.Fatal(err)
			}
			v, err := (&Input{Object: []byte(`{"spec":{}}`), Credentials: []credential.Resolved{r}}).Value()
			if err != nil {
				t.Fatal(err)
			}
			got, err := v.Find(ast.MustParseRef("x.credentials[0].aws.mode")[1:])
			switch {
			case tc.wantMode == "" && err == nil:
				t.Errorf("aws.mode = %v, want none", got)
			case tc.wantMode != "" && (err != nil || got.Compare(ast.String(tc.wantMode)) != 0):
				t.Errorf("aws.mode = %v (%v), want %q", got, err, tc.wantMode)
			}
		})
	}
}
