package credential

import (
	"encoding/json"
	"path"

	"github.com/credgate/credgate/api/v1alpha1"
)

// GCP workload identity federation: an external_account credential configuration, which
// Google's client libraries and gcloud read from GOOGLE_APPLICATION_CREDENTIALS, and the
// projected service-account token it names.
const (
	// GCPTokenPath is the file name of the projected service-account token.
	GCPTokenPath = "token"
	// GCPConfigPath is the file name of the credential configuration.
	GCPConfigPath = "credential-configuration.json"
	// DefaultGCPTokenURL is Google's STS token endpoint.
	DefaultGCPTokenURL = "https://sts.googleapis.com/v1/token"
	// gcpImpersonationURL is the IAM Credentials endpoint, before the service account.
	gcpImpersonationURL = "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/"

	// GCPAccessTokenKey is the key, in the managed Secret of an impersonation credential, of
	// the access token alone: what gcloud reads from CLOUDSDK_AUTH_ACCESS_TOKEN_FILE.
	GCPAccessTokenKey = "access-token"
	// GCPTokenJSONKey is the key of the same token as JSON, {"access_token", "token_type",
	// "expiry"} (RFC 3339): what golang.org/x/oauth2's Token decodes, and what a client library's
	// refresh hook reads to know when to read the file again.
	GCPTokenJSONKey = "token.json"
	// DefaultGCPScope is the scope of an impersonation credential's token by default.
	DefaultGCPScope = "https://www.googleapis.com/auth/cloud-platform"
)

// GCPScopes returns the scopes of impersonation credential g's tokens.
func GCPScopes(g *v1alpha1.GCP) []string {
	if g == nil || len(g.Scopes) == 0 {
		return []string{DefaultGCPScope}
	}
	return g.Scopes
}

// gcpImpersonation is what a credential of mode impersonation mounts and sets: the managed
// Secret that credgate refresher keeps the access token in, whole (no subPath, so that the
// kubelet updates the files in place), and CLOUDSDK_AUTH_ACCESS_TOKEN_FILE, which gcloud,
// gsutil and bq read before every command.
func gcpImpersonation(c *v1alpha1.Credential) (secretName string, f *Files, env []Env) {
	f = &Files{MountPath: defaultMountPath(c.Name), VolumeName: VolumeName(c.Name), DefaultMode: DefaultFileMode,
		Items: []FileItem{
			{Key: GCPAccessTokenKey, Path: GCPAccessTokenKey, Mode: DefaultFileMode},
			{Key: GCPTokenJSONKey, Path: GCPTokenJSONKey, Mode: DefaultFileMode},
		}}
	return ManagedSecretName(c), f, []Env{literalEnv("CLOUDSDK_AUTH_ACCESS_TOKEN_FILE", path.Join(f.MountPath, GCPAccessTokenKey))}
}

// GCPMode returns the GCP mode of spec: keyFile unless spec.gcp.mode says otherwise.
func GCPMode(s *v1alpha1.CredentialSpec) v1alpha1.GCPMode {
	if s.GCP == nil || s.GCP.Mode == "" {
		return v1alpha1.GCPKeyFile
	}
	return s.GCP.Mode
}

// ConfigAnnotation is the pod annotation a credential's configuration file is projected from
// (credgate.dev/<volume name>): no Secret and no ConfigMap holds it, and credgate's
// annotations cannot change once the pod exists.
func ConfigAnnotation(name string) string { return "credgate.dev/" + VolumeName(name) }

// gcpWorkloadIdentityFederation is what a credential of mode workloadIdentityFederation mounts
// and sets: a projected volume of the service-account token and of the configuration,
// projected from the pod annotation credgate writes it to.
func gcpWorkloadIdentityFederation(c *v1alpha1.Credential) (*Files, []Env) {
	g := c.Spec.GCP
	t := &Token{Path: GCPTokenPath, Audience: "https:" + g.Audience, ExpirationSeconds: DefaultWebIdentityExpiration}
	if g.Token != nil {
		if g.Token.Audience != "" {
			t.Audience = g.Token.Audience
		}
		if g.Token.ExpirationSeconds != nil {
			t.ExpirationSeconds = *g.Token.ExpirationSeconds
		}
	}
	mount := defaultMountPath(c.Name)
	cfg := map[string]any{
		"type":               "external_account",
		"audience":           g.Audience,
		"subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
		"token_url":          DefaultGCPTokenURL,
		"credential_source":  map[string]any{"file": path.Join(mount, GCPTokenPath), "format": map[string]string{"type": "text"}},
	}
	if g.TokenURL != "" {
		cfg["token_url"] = g.TokenURL
	}
	if g.ServiceAccountEmail != "" {
		u := g.ImpersonationURL
		if u == "" {
			u = gcpImpersonationURL + g.ServiceAccountEmail + ":generateAccessToken"
		}
		cfg["service_account_impersonation_url"] = u
	}
	content, _ := json.Marshal(cfg) // strings and maps of strings
	f := &Files{MountPath: mount, VolumeName: VolumeName(c.Name), DefaultMode: DefaultFileMode, Token: t,
		Config: &ConfigFile{Path: GCPConfigPath, Annotation: ConfigAnnotation(c.Name), Content: string(content)}}
	return f, []Env{literalEnv("GOOGLE_APPLICATION_CREDENTIALS", path.Join(mount, GCPConfigPath))}
}
