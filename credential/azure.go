package credential

import (
	"path"

	"github.com/credgate/credgate/api/v1alpha1"
)

// Azure workload identity: what the Azure SDKs read (azidentity's WorkloadIdentityCredential
// and DefaultAzureCredential, and the other languages' equivalents), as Azure's own
// workload-identity webhook sets them.
const (
	// AzureTokenPath is the file name of the projected service-account token.
	AzureTokenPath = "azure-identity-token"
	// DefaultAzureAudience is the audience a federated identity credential expects.
	DefaultAzureAudience = "api://AzureADTokenExchange"
	// DefaultAzureAuthorityHost is Entra ID's public cloud endpoint.
	DefaultAzureAuthorityHost = "https://login.microsoftonline.com/"
)

// AzureMode returns the Azure mode of spec: clientSecret unless spec.azure.mode says otherwise.
func AzureMode(s *v1alpha1.CredentialSpec) v1alpha1.AzureMode {
	if s.Azure == nil || s.Azure.Mode == "" {
		return v1alpha1.AzureClientSecret
	}
	return s.Azure.Mode
}

// azureWorkloadIdentity is what a credential of mode workloadIdentity mounts and sets: a
// projected service-account token, no Secret, and the variables that point the SDKs at it.
func azureWorkloadIdentity(c *v1alpha1.Credential) (*Files, []Env) {
	a := c.Spec.Azure
	t := &Token{Path: AzureTokenPath, Audience: DefaultAzureAudience, ExpirationSeconds: DefaultWebIdentityExpiration}
	if a.Token != nil {
		if a.Token.Audience != "" {
			t.Audience = a.Token.Audience
		}
		if a.Token.ExpirationSeconds != nil {
			t.ExpirationSeconds = *a.Token.ExpirationSeconds
		}
	}
	f := &Files{MountPath: defaultMountPath(c.Name), VolumeName: VolumeName(c.Name), DefaultMode: DefaultFileMode, Token: t}
	authority := a.AuthorityHost
	if authority == "" {
		authority = DefaultAzureAuthorityHost
	}
	return f, []Env{
		literalEnv("AZURE_CLIENT_ID", a.ClientID),
		literalEnv("AZURE_TENANT_ID", a.TenantID),
		literalEnv("AZURE_FEDERATED_TOKEN_FILE", path.Join(f.MountPath, AzureTokenPath)),
		literalEnv("AZURE_AUTHORITY_HOST", authority),
	}
}
