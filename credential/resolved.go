package credential

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/credgate/credgate/api/v1alpha1"
)

// DefaultMountRoot is the directory under which credential files appear by default:
// <DefaultMountRoot>/<credential-name>.
const DefaultMountRoot = "/var/run/secrets/credgate"

// DefaultFileMode is the mode of a mounted credential file unless the Credential says otherwise.
const DefaultFileMode int32 = 0o400

// Resolved is a Credential with its preset applied: exactly what mutate injects and what the
// policy layer sees. It holds references to Secret keys, never secret values.
type Resolved struct {
	Name            string
	Type            v1alpha1.CredentialType
	SecretName      string // empty for a generic credential without secretRef
	Env             []Env
	Files           *Files // nil when the credential mounts no files
	ImagePullSecret bool
	// Source is the Credential this was resolved from, for the policy input (access, aws,
	// allowedServiceAccounts, status). Treat it as read-only.
	Source *v1alpha1.Credential
	// Hash is a content hash of everything above that reaches a pod.
	Hash string
}

// Env is one variable to inject: from a key of the credential's Secret, or a literal.
type Env struct {
	Name string
	// Key is the Secret key the value comes from; empty for a literal.
	Key string
	// Optional marks a Secret key that may be absent (the variable is then unset).
	Optional    bool
	Value       string
	Overridable bool
}

// FromSecret reports whether the variable's value comes from the Secret.
func (e Env) FromSecret() bool { return e.Key != "" }

// Files is the credential's volume: a secret volume, or, with Token set, a projected
// service-account token.
type Files struct {
	MountPath  string
	VolumeName string
	// Items lists the keys to project; empty projects every key of the Secret.
	Items       []FileItem
	DefaultMode int32
	// Token, when set, makes the volume a projected service-account token (mode
	// webIdentity) instead of a secret volume: no Secret at all.
	Token *Token
	// Config, with Token, adds to the projected volume a configuration file, projected from
	// a pod annotation credgate writes (GCP workload identity federation).
	Config *ConfigFile
}

// ConfigFile is a file a projected volume takes from a pod annotation: not a secret.
type ConfigFile struct {
	Path       string
	Annotation string
	Content    string
}

// Token is a projected service-account token, refreshed by the kubelet.
type Token struct {
	Path              string
	Audience          string
	ExpirationSeconds int64
}

// FileItem projects one Secret key to a file.
type FileItem struct {
	Key  string
	Path string
	Mode int32
}

// hashResolved computes r.Hash from the fields that reach a pod.
func hashResolved(r *Resolved) string {
	h := sha256.New()
	w := func(parts ...string) {
		for _, p := range parts {
			h.Write([]byte(p))
			h.Write([]byte{0})
		}
	}
	w(r.Name, string(r.Type), r.SecretName, strconv.FormatBool(r.ImagePullSecret))
	for _, e := range r.Env {
		w("env", e.Name, e.Key, strconv.FormatBool(e.Optional), e.Value, strconv.FormatBool(e.Overridable))
	}
	if f := r.Files; f != nil {
		w("files", f.MountPath, f.VolumeName, strconv.Itoa(int(f.DefaultMode)))
		for _, it := range f.Items {
			w("item", it.Key, it.Path, strconv.Itoa(int(it.Mode)))
		}
		if t := f.Token; t != nil {
			w("token", t.Path, t.Audience, strconv.FormatInt(t.ExpirationSeconds, 10))
		}
		if cf := f.Config; cf != nil {
			w("config", cf.Path, cf.Annotation, cf.Content)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}
