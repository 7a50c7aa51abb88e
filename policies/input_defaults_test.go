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

// TestInputAppliesGCPAndAzureDefaults: gcp and azure Credentials reach policies with the API
// server's defaults applied — mode keyFile or clientSecret without spec.gcp or spec.azure, an
// impersonation credential's default scope — and other types keep empty gcp and azure objects.
func TestInputAppliesGCPAndAzureDefaults(t *testing.T) {
	secret := &v1alpha1.SecretReference{Name: "s"}
	for _, tc := range []struct {
		name      string
		spec      v1alpha1.CredentialSpec
		gcp, azur string // the objects' JSON
	}{
		{name: "gcp-key-file", spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeGCP, SecretRef: secret},
			gcp: `{"mode": "keyFile", "serviceAccountEmail": "", "scopes": []}`, azur: `{}`},
		{name: "gcp-federation", spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeGCP, GCP: &v1alpha1.GCP{
			Mode: v1alpha1.GCPWorkloadIdentityFederation, ServiceAccountEmail: "sa@p.iam.gserviceaccount.com",
			Audience: "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/k"}},
			gcp: `{"mode": "workloadIdentityFederation", "serviceAccountEmail": "sa@p.iam.gserviceaccount.com", "scopes": []}`, azur: `{}`},
		{name: "gcp-impersonation", spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeGCP, GCP: &v1alpha1.GCP{
			Mode: v1alpha1.GCPImpersonation, ServiceAccountEmail: "sa@p.iam.gserviceaccount.com", SourceSecretRef: secret}},
			gcp: `{"mode": "impersonation", "serviceAccountEmail": "sa@p.iam.gserviceaccount.com", "scopes": ["https://www.googleapis.com/auth/cloud-platform"]}`, azur: `{}`},
		{name: "gcp-impersonation-scopes", spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeGCP, GCP: &v1alpha1.GCP{
			Mode: v1alpha1.GCPImpersonation, ServiceAccountEmail: "sa@p.iam.gserviceaccount.com", SourceSecretRef: secret,
			Scopes: []string{"https://www.googleapis.com/auth/devstorage.read_only", "openid"}}},
			gcp: `{"mode": "impersonation", "serviceAccountEmail": "sa@p.iam.gserviceaccount.com", "scopes": ["https://www.googleapis.com/auth/devstorage.read_only", "openid"]}`, azur: `{}`},
		{name: "azure-client-secret", spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeAzure, SecretRef: secret},
			gcp: `{}`, azur: `{"mode": "clientSecret", "clientID": "", "tenantID": ""}`},
		{name: "azure-workload-identity", spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeAzure, Azure: &v1alpha1.Azure{
			Mode: v1alpha1.AzureWorkloadIdentity, ClientID: "6b0c0a3e-1f7e-4d8a-9a49-0c1f0b2f7a11", TenantID: "contoso.onmicrosoft.com"}},
			gcp: `{}`, azur: `{"mode": "workloadIdentity", "clientID": "6b0c0a3e-1f7e-4d8a-9a49-0c1f0b2f7a11", "tenantID": "contoso.onmicrosoft.com"}`},
		{name: "aws", spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeAWS, SecretRef: secret}, gcp: `{}`, azur: `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "ml"}, Spec: tc.spec}
			r, err := credential.Resolve(c)
			if err != nil {
				t.Fatal(err)
			}
			v, err := (&Input{Object: []byte(`{"spec":{}}`), Credentials: []credential.Resolved{r}}).Value()
			if err != nil {
				t.Fatal(err)
			}
			for key, want := range map[string]string{"gcp": tc.gcp, "azure": tc.azur} {
				got, err := v.Find(ast.MustParseRef("x.credentials[0]." + key)[1:])
				if err != nil || got.Compare(ast.MustParseTerm(want).Value) != 0 {
					t.Errorf("%s = %v (%v), want %s", key, got, err, want)
				}
			}
		})
	}
}
