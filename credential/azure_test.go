package credential_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
)

const (
	azureClient = "00000000-0000-0000-0000-0000000000c1"
	azureTenant = "00000000-0000-0000-0000-0000000000e1"
)

// azureCredential is a Credential of type azure with spec.azure a and no secretRef.
func azureCredential(name string, a v1alpha1.Azure) *v1alpha1.Credential {
	return &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ml"},
		Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeAzure, Azure: &a}}
}

// TestResolveAzureWorkloadIdentity: mode workloadIdentity projects the service-account token
// and sets what azidentity's WorkloadIdentityCredential reads — no Secret at all.
func TestResolveAzureWorkloadIdentity(t *testing.T) {
	tests := []struct {
		name string
		cred *v1alpha1.Credential
		want injection
	}{
		{
			name: "defaults: the token exchange audience, an hour, the public cloud",
			cred: azureCredential("blob", v1alpha1.Azure{Mode: v1alpha1.AzureWorkloadIdentity, ClientID: azureClient, TenantID: azureTenant}),
			want: injection{
				Files: &credential.Files{MountPath: "/var/run/secrets/credgate/blob", VolumeName: "credgate-blob", DefaultMode: 0o400,
					Token: &credential.Token{Path: "azure-identity-token", Audience: "api://AzureADTokenExchange", ExpirationSeconds: 3600}},
				Env: []credential.Env{
					literal("AZURE_CLIENT_ID", azureClient),
					literal("AZURE_TENANT_ID", azureTenant),
					literal("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/credgate/blob/azure-identity-token"),
					literal("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.com/"),
				},
			},
		},
		{
			name: "a sovereign cloud, its own audience and lifetime",
			cred: azureCredential("gov", v1alpha1.Azure{Mode: v1alpha1.AzureWorkloadIdentity, ClientID: azureClient, TenantID: azureTenant,
				AuthorityHost: "https://login.microsoftonline.us/", Token: &v1alpha1.ProjectedToken{Audience: "api://AzureADTokenExchangeUSGov",
					ExpirationSeconds: new(int64(7200))}}),
			want: injection{
				Files: &credential.Files{MountPath: "/var/run/secrets/credgate/gov", VolumeName: "credgate-gov", DefaultMode: 0o400,
					Token: &credential.Token{Path: "azure-identity-token", Audience: "api://AzureADTokenExchangeUSGov", ExpirationSeconds: 7200}},
				Env: []credential.Env{
					literal("AZURE_CLIENT_ID", azureClient),
					literal("AZURE_TENANT_ID", azureTenant),
					literal("AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/credgate/gov/azure-identity-token"),
					literal("AZURE_AUTHORITY_HOST", "https://login.microsoftonline.us/"),
				},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := credential.Resolve(tt.cred)
			if err != nil {
				t.Fatal(err)
			}
			got := injection{SecretName: r.SecretName, Env: r.Env, Files: r.Files, ImagePullSecret: r.ImagePullSecret}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Resolve() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidateAzureModes(t *testing.T) {
	keys := &v1alpha1.SecretReference{Name: "keys"}
	tests := []struct {
		name string
		cred *v1alpha1.Credential
		want []string
	}{
		{name: "workloadIdentity", cred: azureCredential("a", v1alpha1.Azure{Mode: v1alpha1.AzureWorkloadIdentity, ClientID: azureClient, TenantID: azureTenant})},
		{
			name: "clientSecret, the default, reads the Secret",
			cred: func() *v1alpha1.Credential {
				c := azureCredential("a", v1alpha1.Azure{})
				c.Spec.SecretRef = keys
				return c
			}(),
		},
		{
			name: "workloadIdentity without ids",
			cred: azureCredential("a", v1alpha1.Azure{Mode: v1alpha1.AzureWorkloadIdentity}),
			want: []string{"azure mode workloadIdentity needs spec.azure.clientID and tenantID"},
		},
		{
			name: "workloadIdentity with a Secret too",
			cred: func() *v1alpha1.Credential {
				c := azureCredential("a", v1alpha1.Azure{Mode: v1alpha1.AzureWorkloadIdentity, ClientID: azureClient, TenantID: azureTenant})
				c.Spec.SecretRef = keys
				return c
			}(),
			want: []string{"takes no spec.secretRef"},
		},
		{
			name: "azure options on another type",
			cred: func() *v1alpha1.Credential {
				c := azureCredential("a", v1alpha1.Azure{Mode: v1alpha1.AzureWorkloadIdentity, ClientID: azureClient, TenantID: azureTenant})
				c.Spec.Type = v1alpha1.TypeGCP
				return c
			}(),
			want: []string{"spec.azure is for type azure"},
		},
		{
			name: "bad values",
			cred: azureCredential("a", v1alpha1.Azure{Mode: v1alpha1.AzureWorkloadIdentity, ClientID: "me", TenantID: "contoso/../x",
				AuthorityHost: "http://login.example.com/", Token: &v1alpha1.ProjectedToken{ExpirationSeconds: new(int64(60))}}),
			want: []string{`spec.azure.authorityHost: Invalid value: "http://login.example.com/"`, `spec.azure.clientID: Invalid value: "me"`,
				`spec.azure.tenantID: Invalid value: "contoso/../x"`,
				"spec.azure.token.expirationSeconds: Invalid value: 60"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := credential.Validate(tt.cred); !matchAll(tt.want, got) {
				t.Errorf("Validate() = %q, want fragments %q", got, tt.want)
			}
		})
	}
}
