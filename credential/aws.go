package credential

import (
	"fmt"
	"path"

	"github.com/credgate/credgate/api/v1alpha1"
)

// The keys of the Secret credgate keeps an assumeRole credential's temporary credentials in
// (ManagedSecretName), mounted as files into the pods that request it.
const (
	// AWSConfigKey is an AWS config file whose default profile runs credential_process on
	// AWSProcessKey: the SDKs re-read it whenever the credentials they hold expire.
	AWSConfigKey = "config"
	// AWSProcessKey holds the credentials in the credential_process output format (Version
	// 1, with Expiration).
	AWSProcessKey = "credentials.json"
	// AWSTokenPath is the file name of the projected service-account token of mode
	// webIdentity.
	AWSTokenPath = "token"
	// DefaultWebIdentityAudience is the audience AWS STS expects.
	DefaultWebIdentityAudience = "sts.amazonaws.com"
	// DefaultWebIdentityExpiration is the projected token's default lifetime, in seconds.
	DefaultWebIdentityExpiration int64 = 3600
)

// AWSMode returns the AWS mode of spec: static unless spec.aws.mode says otherwise.
func AWSMode(s *v1alpha1.CredentialSpec) v1alpha1.AWSMode {
	if s.AWS == nil || s.AWS.Mode == "" {
		return v1alpha1.AWSStatic
	}
	return s.AWS.Mode
}

// ManagedSecretName is the Secret, in c's namespace, that credgate keeps the temporary
// credentials of c in: for an aws assumeRole or gcp impersonation Credential, and "" for
// any other (Refreshed).
func ManagedSecretName(c *v1alpha1.Credential) string {
	switch {
	case AWSMode(&c.Spec) == v1alpha1.AWSAssumeRole:
		return ManagedSecretPrefixAWS + c.Name
	case GCPMode(&c.Spec) == v1alpha1.GCPImpersonation:
		return ManagedSecretPrefixGCP + c.Name
	}
	return ""
}

// The prefixes of the managed Secrets' names. A Credential's spec.secretRef may not name
// such a Secret: what credgate minted for one Credential reaches pods only through it.
const (
	ManagedSecretPrefixAWS = "credgate-aws-"
	ManagedSecretPrefixGCP = "credgate-gcp-"
)

// Refreshed reports whether credgate refresher mints the credentials of a Credential of
// spec s (aws mode assumeRole, gcp mode impersonation) and keeps them in its managed Secret.
func Refreshed(s *v1alpha1.CredentialSpec) bool {
	return AWSMode(s) == v1alpha1.AWSAssumeRole || GCPMode(s) == v1alpha1.GCPImpersonation
}

// temporaryAWS is what a credential of mode assumeRole or webIdentity mounts and sets in
// place of the static keys: the Secret it mounts (none for webIdentity), its volume, and the
// variables that point the SDKs at it.
func temporaryAWS(c *v1alpha1.Credential, mode v1alpha1.AWSMode) (secretName string, f *Files, env []Env) {
	f = &Files{
		MountPath:   defaultMountPath(c.Name),
		VolumeName:  VolumeName(c.Name),
		DefaultMode: DefaultFileMode,
	}
	if mode == v1alpha1.AWSWebIdentity {
		t := &Token{Path: AWSTokenPath, Audience: DefaultWebIdentityAudience, ExpirationSeconds: DefaultWebIdentityExpiration}
		if w := c.Spec.AWS.WebIdentity; w != nil {
			if w.Audience != "" {
				t.Audience = w.Audience
			}
			if w.ExpirationSeconds != nil {
				t.ExpirationSeconds = *w.ExpirationSeconds
			}
		}
		f.Token = t
		env = []Env{
			literalEnv("AWS_ROLE_ARN", c.Spec.AWS.RoleARN),
			literalEnv("AWS_WEB_IDENTITY_TOKEN_FILE", path.Join(f.MountPath, AWSTokenPath)),
		}
		if c.Spec.Type == v1alpha1.TypeS3Compatible && c.Spec.AWS.Endpoint != "" {
			// The pod's SDK exchanges the token itself: at the S3-compatible server's STS.
			env = append(env, literalEnv("AWS_ENDPOINT_URL_STS", c.Spec.AWS.Endpoint))
		}
		return "", f, env
	}
	f.Items = []FileItem{
		{Key: AWSConfigKey, Path: AWSConfigKey, Mode: DefaultFileMode},
		{Key: AWSProcessKey, Path: AWSProcessKey, Mode: DefaultFileMode},
	}
	return ManagedSecretName(c), f, []Env{
		literalEnv("AWS_CONFIG_FILE", path.Join(f.MountPath, AWSConfigKey)),
		// The v1 Go SDK reads the config file only when asked to.
		literalEnv("AWS_SDK_LOAD_CONFIG", "1"),
	}
}

// AWSConfigFile is the AWS config file of assumeRole Credential namespace/name: its
// default profile reads the credentials file with credential_process, which every AWS SDK
// and the CLI support and re-run when the credentials they hold expire. The kubelet keeps
// the mounted file current as credgate refreshes the Secret.
func AWSConfigFile(namespace, name string) []byte {
	return fmt.Appendf(nil, "# Written by credgate for Credential %s/%s: temporary credentials, refreshed before they expire.\n[default]\ncredential_process = /bin/cat %s\n",
		namespace, name, path.Join(defaultMountPath(name), AWSProcessKey))
}
