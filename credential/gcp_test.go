package credential_test

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
)

const gcpProvider = "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/ml/providers/k8s"

func gcpCredential(name string, g v1alpha1.GCP) *v1alpha1.Credential {
	return &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ml"},
		Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeGCP, GCP: &g}}
}

// TestResolveGCPWorkloadIdentityFederation: no Secret; a projected token, and an
// external_account configuration projected from credgate's annotation, which names that token
// and, when a service account is given, its impersonation.
func TestResolveGCPWorkloadIdentityFederation(t *testing.T) {
	for _, tt := range []struct {
		name       string
		g          v1alpha1.GCP
		wantConfig map[string]any
		audience   string
	}{
		{
			name: "defaults: Google's STS, the provider's https: audience, no impersonation",
			g:    v1alpha1.GCP{Mode: v1alpha1.GCPWorkloadIdentityFederation, Audience: gcpProvider},
			wantConfig: map[string]any{"type": "external_account", "audience": gcpProvider,
				"subject_token_type": "urn:ietf:params:oauth:token-type:jwt", "token_url": "https://sts.googleapis.com/v1/token",
				"credential_source": map[string]any{"file": "/var/run/secrets/credgate/gcs/token", "format": map[string]any{"type": "text"}}},
			audience: "https:" + gcpProvider,
		},
		{
			name: "impersonation, a private endpoint, an audience of its own",
			g: v1alpha1.GCP{Mode: v1alpha1.GCPWorkloadIdentityFederation, Audience: gcpProvider,
				ServiceAccountEmail: "trainer@ml.iam.gserviceaccount.com", TokenURL: "https://sts-psc.p.googleapis.com/v1/token",
				Token: &v1alpha1.ProjectedToken{Audience: "ml-cluster"}},
			wantConfig: map[string]any{"type": "external_account", "audience": gcpProvider,
				"subject_token_type": "urn:ietf:params:oauth:token-type:jwt", "token_url": "https://sts-psc.p.googleapis.com/v1/token",
				"credential_source":                 map[string]any{"file": "/var/run/secrets/credgate/gcs/token", "format": map[string]any{"type": "text"}},
				"service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/trainer@ml.iam.gserviceaccount.com:generateAccessToken"},
			audience: "ml-cluster",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r, err := credential.Resolve(gcpCredential("gcs", tt.g))
			if err != nil {
				t.Fatal(err)
			}
			if r.SecretName != "" || r.Files == nil || r.Files.Token == nil || r.Files.Config == nil || len(r.Files.Items) != 0 {
				t.Fatalf("resolved %+v, want a projected token and configuration, no Secret", r)
			}
			if r.Files.Token.Audience != tt.audience || r.Files.Token.Path != "token" {
				t.Errorf("token %+v, want audience %s", r.Files.Token, tt.audience)
			}
			if r.Files.Config.Annotation != "credgate.dev/credgate-gcs" || r.Files.Config.Path != "credential-configuration.json" {
				t.Errorf("configuration %+v", r.Files.Config)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(r.Files.Config.Content), &got); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantConfig, got); diff != "" {
				t.Errorf("configuration (-want +got):\n%s", diff)
			}
			want := []credential.Env{
				literal("GOOGLE_APPLICATION_CREDENTIALS", "/var/run/secrets/credgate/gcs/credential-configuration.json"),
				literal("CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE", "/var/run/secrets/credgate/gcs/credential-configuration.json"),
			}
			if diff := cmp.Diff(want, r.Env); diff != "" {
				t.Errorf("env (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateGCPModes(t *testing.T) {
	keys := &v1alpha1.SecretReference{Name: "keys"}
	wif := v1alpha1.GCP{Mode: v1alpha1.GCPWorkloadIdentityFederation, Audience: gcpProvider}
	for _, tt := range []struct {
		name string
		cred *v1alpha1.Credential
		want []string
	}{
		{name: "workloadIdentityFederation", cred: gcpCredential("a", wif)},
		{name: "without the provider", cred: gcpCredential("a", v1alpha1.GCP{Mode: v1alpha1.GCPWorkloadIdentityFederation}),
			want: []string{"gcp mode workloadIdentityFederation needs spec.gcp.audience"}},
		{name: "with a Secret too", cred: func() *v1alpha1.Credential {
			c := gcpCredential("a", wif)
			c.Spec.SecretRef = keys
			return c
		}(), want: []string{"takes no spec.secretRef"}},
		{name: "on another type", cred: func() *v1alpha1.Credential {
			c := gcpCredential("a", wif)
			c.Spec.Type = v1alpha1.TypeAzure
			return c
		}(), want: []string{"spec.gcp is for type gcp"}},
		{name: "impersonation URL without a service account", cred: gcpCredential("a", v1alpha1.GCP{Mode: v1alpha1.GCPWorkloadIdentityFederation,
			Audience: gcpProvider, ImpersonationURL: "https://iamcredentials.example.com/x"}),
			want: []string{"spec.gcp.impersonationURL needs spec.gcp.serviceAccountEmail"}},
		{name: "bad values", cred: gcpCredential("a", v1alpha1.GCP{Mode: v1alpha1.GCPWorkloadIdentityFederation,
			Audience: "projects/123/pools/ml", TokenURL: "http://sts.example.com/v1/token"}),
			want: []string{`spec.gcp.audience: Invalid value: "projects/123/pools/ml"`, `spec.gcp.tokenURL: Invalid value: "http://sts.example.com/v1/token"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := credential.Validate(tt.cred); !matchAll(tt.want, got) {
				t.Errorf("Validate() = %q, want fragments %q", got, tt.want)
			}
		})
	}
}

// TestResolveGCPImpersonation: the managed Secret the refresher writes, mounted whole (the
// kubelet updates it in place), and gcloud pointed at its token file; no tenant Secret.
func TestResolveGCPImpersonation(t *testing.T) {
	r, err := credential.Resolve(gcpCredential("gcs", v1alpha1.GCP{Mode: v1alpha1.GCPImpersonation,
		ServiceAccountEmail: "trainer@ml.iam.gserviceaccount.com", SourceSecretRef: &v1alpha1.SecretReference{Name: "minter"}}))
	if err != nil {
		t.Fatal(err)
	}
	if r.SecretName != "credgate-gcp-gcs" || r.Files == nil || r.Files.Token != nil || r.Files.Config != nil {
		t.Fatalf("resolved %+v, want the managed Secret's volume", r)
	}
	wantItems := []credential.FileItem{{Key: "access-token", Path: "access-token", Mode: 0o400}, {Key: "token.json", Path: "token.json", Mode: 0o400}}
	if diff := cmp.Diff(wantItems, r.Files.Items); diff != "" || r.Files.MountPath != "/var/run/secrets/credgate/gcs" {
		t.Errorf("files at %s (-want +got):\n%s", r.Files.MountPath, diff)
	}
	want := []credential.Env{literal("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", "/var/run/secrets/credgate/gcs/access-token")}
	if diff := cmp.Diff(want, r.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if got := credential.ManagedSecretName(gcpCredential("gcs", v1alpha1.GCP{Mode: v1alpha1.GCPKeyFile})); got != "" {
		t.Errorf("a key-file credential has managed Secret %q", got)
	}
}

func TestValidateGCPImpersonation(t *testing.T) {
	source := &v1alpha1.SecretReference{Name: "minter"}
	imp := func(f func(*v1alpha1.GCP)) *v1alpha1.Credential {
		g := v1alpha1.GCP{Mode: v1alpha1.GCPImpersonation, ServiceAccountEmail: "trainer@ml.iam.gserviceaccount.com", SourceSecretRef: source}
		if f != nil {
			f(&g)
		}
		return gcpCredential("a", g)
	}
	for _, tt := range []struct {
		name string
		cred *v1alpha1.Credential
		want []string
	}{
		{name: "impersonation", cred: imp(nil)},
		{name: "scopes and lifetime", cred: imp(func(g *v1alpha1.GCP) {
			g.Scopes = []string{"https://www.googleapis.com/auth/devstorage.read_only", "openid"}
			g.LifetimeSeconds = new(int32(600))
		})},
		{name: "without a source", cred: imp(func(g *v1alpha1.GCP) { g.SourceSecretRef = nil }),
			want: []string{"gcp mode impersonation needs spec.gcp.sourceSecretRef and serviceAccountEmail"}},
		{name: "without a service account", cred: imp(func(g *v1alpha1.GCP) { g.ServiceAccountEmail = "" }),
			want: []string{"gcp mode impersonation needs spec.gcp.sourceSecretRef and serviceAccountEmail"}},
		{name: "with a tenant Secret", cred: func() *v1alpha1.Credential {
			c := imp(nil)
			c.Spec.SecretRef = &v1alpha1.SecretReference{Name: "keys"}
			return c
		}(), want: []string{"gcp mode impersonation takes no spec.secretRef"}},
		{name: "a tenant's endpoint", cred: imp(func(g *v1alpha1.GCP) {
			g.ImpersonationURL = "https://evil.example.com/x"
		}), want: []string{"in mode impersonation the source's grant says where credgate mints tokens"}},
		{name: "federation fields", cred: imp(func(g *v1alpha1.GCP) { g.Audience = gcpProvider }),
			want: []string{"audience, tokenURL, impersonationURL and token apply to mode workloadIdentityFederation"}},
		{name: "impersonation fields in another mode", cred: gcpCredential("a", v1alpha1.GCP{Mode: v1alpha1.GCPWorkloadIdentityFederation,
			Audience: gcpProvider, SourceSecretRef: source, Scopes: []string{"openid"}}),
			want: []string{"sourceSecretRef, scopes and lifetimeSeconds apply to it only"}},
		{name: "bad scope and lifetime", cred: imp(func(g *v1alpha1.GCP) {
			g.Scopes = []string{"https://evil.example.com/auth/x"}
			g.LifetimeSeconds = new(int32(60))
		}), want: []string{"spec.gcp.lifetimeSeconds: Invalid value: 60", `spec.gcp.scopes[0]: Invalid value: "https://evil.example.com/auth/x"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := credential.Validate(tt.cred); !matchAll(tt.want, got) {
				t.Errorf("Validate() = %q, want fragments %q", got, tt.want)
			}
		})
	}
}

// A Credential may not name a managed Secret: what the refresher minted for one Credential
// (and empties when its grant is revoked) reaches pods only through that Credential.
func TestValidateManagedSecretNotNamed(t *testing.T) {
	for _, name := range []string{"credgate-gcp-gcs", "credgate-aws-s3"} {
		c := gcpCredential("key", v1alpha1.GCP{Mode: v1alpha1.GCPKeyFile})
		c.Spec.SecretRef = &v1alpha1.SecretReference{Name: name}
		if got := credential.Validate(c); !matchAll([]string{"spec.secretRef may not name a Secret credgate refresher keeps"}, got) {
			t.Errorf("Validate() with secretRef %s = %q", name, got)
		}
	}
	c := gcpCredential("key", v1alpha1.GCP{Mode: v1alpha1.GCPKeyFile})
	c.Spec.SecretRef = &v1alpha1.SecretReference{Name: "credgate-gcs-key"}
	if got := credential.Validate(c); len(got) != 0 {
		t.Errorf("Validate() = %q", got)
	}
}
