package credential

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/credgate/credgate/api/v1alpha1"
)

// Limits on the IAM documents a Credential declares, which policies read on every admission:
// IAM's and STS's own limits, so that no real document is refused. The CRD cannot bound them
// (they are schemaless), so they are checked at admission, as invalid-credential.
const (
	MaxPolicyDocumentBytes = 10240
	MaxSessionPolicyBytes  = 2048
)

// Validate returns every problem the API server finds in c when it is created, in its words
// and with its field paths: c is checked against the Credential CRD's own OpenAPI schema and
// CEL rules by the API server's code (k8s.io/apiextensions-apiserver), so `credgate eval`
// refuses exactly what `kubectl apply` refuses. A nil result means c is valid.
func Validate(c *v1alpha1.Credential) []string {
	return errorStrings(schemaErrors(c))
}

func errorStrings(errs field.ErrorList) []string {
	if len(errs) == 0 {
		return nil
	}
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Error()
	}
	slices.Sort(out) // the schema validator's order follows Go maps; a user reads a stable list
	return out
}

// admissionProblems returns what credgate refuses in a Credential beyond its schema: the byte
// size of its schemaless IAM documents.
func admissionProblems(c *v1alpha1.Credential) []string {
	var errs []string
	if pd := c.Spec.Access.PolicyDocument; pd != nil && len(pd.Raw) > MaxPolicyDocumentBytes {
		errs = append(errs, fmt.Sprintf("spec.access.policyDocument is %d bytes; at most %d are accepted (IAM's own limit on an inline policy)", len(pd.Raw), MaxPolicyDocumentBytes))
	}
	if a := c.Spec.AWS; a != nil && a.SessionPolicy != nil && len(a.SessionPolicy.Raw) > MaxSessionPolicyBytes {
		errs = append(errs, fmt.Sprintf("spec.aws.sessionPolicy is %d bytes; at most %d are accepted (STS's own limit on a session policy)", len(a.SessionPolicy.Raw), MaxSessionPolicyBytes))
	}
	return errs
}

// ErrInvalid wraps the problems Validate found.
var ErrInvalid = errors.New("invalid credential")

// Resolve applies c's preset and merges c's own env and files over it. It returns ErrInvalid
// (wrapped, with every problem listed) for a Credential the schema would refuse.
func Resolve(c *v1alpha1.Credential) (Resolved, error) {
	if errs := slices.Concat(validated(c), admissionProblems(c)); len(errs) > 0 { // validated's slice is shared: never append to it
		return Resolved{}, fmt.Errorf("%w %s: %s", ErrInvalid, c.Name, strings.Join(errs, "; "))
	}
	s := &c.Spec
	typ := s.Type
	if typ == "" {
		typ = v1alpha1.TypeGeneric
	}
	p := presets[typ]
	r := Resolved{Name: c.Name, Type: typ, Source: c, ImagePullSecret: p.pullSecret}
	if s.SecretRef != nil {
		r.SecretName = s.SecretRef.Name
	}
	if s.ImagePullSecret != nil {
		r.ImagePullSecret = *s.ImagePullSecret
	}
	r.Files = resolveFiles(c, p)
	base := p.env
	if mode := AWSMode(s); mode != v1alpha1.AWSStatic {
		// credgate, or the pod's SDK, provides the identity: no keys from a tenant Secret.
		r.SecretName, r.Files, base = temporaryAWS(c, mode)
	}
	switch GCPMode(s) {
	case v1alpha1.GCPWorkloadIdentityFederation:
		// The pod's service-account token is the credential: no Secret.
		r.SecretName = ""
		r.Files, base = gcpWorkloadIdentityFederation(c)
	case v1alpha1.GCPImpersonation:
		// credgate mints the token: no key from a tenant Secret.
		r.SecretName, r.Files, base = gcpImpersonation(c)
	}
	if AzureMode(s) == v1alpha1.AzureWorkloadIdentity {
		// The pod's service-account token is the credential: no Secret.
		r.SecretName = ""
		r.Files, base = azureWorkloadIdentity(c)
	}

	env := make([]Env, 0, len(base)+len(s.Env)+3)
	env = append(env, base...)
	if p.derive != nil {
		env = append(env, p.derive(s, r.Files)...)
	}
	for _, e := range s.Env {
		env = setEnv(env, toEnv(e))
	}
	r.Env = applyAliases(env, p.aliases, s.Env)
	r.Hash = hashResolved(&r)
	return r, nil
}

func toEnv(e v1alpha1.EnvVar) Env {
	if e.Key != nil {
		return Env{Name: e.Name, Key: *e.Key}
	}
	return Env{Name: e.Name, Value: *e.Value, Overridable: e.Overridable}
}

// applyAliases inserts each alias after its primary, as a copy of the primary's final
// definition, unless the Credential's own env sets the alias.
func applyAliases(env []Env, aliases []alias, own []v1alpha1.EnvVar) []Env {
	for _, a := range aliases {
		if slices.ContainsFunc(own, func(e v1alpha1.EnvVar) bool { return e.Name == a.name }) {
			continue
		}
		i := slices.IndexFunc(env, func(e Env) bool { return e.Name == a.of })
		if i < 0 {
			continue
		}
		copied := env[i]
		copied.Name = a.name
		env = slices.Insert(env, i+1, copied)
	}
	return env
}

// setEnv replaces the variable named e.Name in env, or appends e.
func setEnv(env []Env, e Env) []Env {
	for i := range env {
		if env[i].Name == e.Name {
			env[i] = e
			return env
		}
	}
	return append(env, e)
}

// resolveFiles merges the Credential's files over the preset's.
func resolveFiles(c *v1alpha1.Credential, p preset) *Files {
	f := c.Spec.Files
	if f == nil && p.files == nil && !p.wholeSecret {
		return nil
	}
	out := &Files{
		MountPath:   defaultMountPath(c.Name),
		VolumeName:  VolumeName(c.Name),
		DefaultMode: DefaultFileMode,
		Items:       p.files,
	}
	if f != nil {
		if f.MountPath != "" {
			out.MountPath = path.Clean(f.MountPath)
		}
		if len(f.Items) > 0 {
			out.Items = make([]FileItem, 0, len(f.Items))
			for _, it := range f.Items {
				mode := DefaultFileMode
				if it.Mode != nil {
					mode = *it.Mode
				}
				out.Items = append(out.Items, FileItem{Key: it.Key, Path: path.Clean(it.Path), Mode: mode})
			}
		}
	}
	return out
}

// defaultMountPath is where the files of the credential called name appear unless it says
// otherwise.
func defaultMountPath(name string) string { return path.Join(DefaultMountRoot, name) }

// VolumePrefix starts the name of every volume credgate adds.
const VolumePrefix = "credgate-"

// VolumeName is the name of the volume of the credential called name. An ordinary name — one
// for which credgate-<name> is a DNS label (no dot, at most 54 characters) — gives
// credgate-<name>. Any other gives credgate--<prefix>-<hash>: the double dash, which no
// credgate-<name> can have (a name begins with a letter or digit), then the name's first 30
// characters with dots made dashes, then 20 hex digits (80 bits) of the SHA-256 of the whole
// name. So two credentials never share a volume ("a.b" and "a-b-2e7336dc" once did, and a.b's
// files were silently not mounted; with 32 bits of hash a tenant could find two long names of
// one volume), and every name fits the 63 characters of a DNS label.
func VolumeName(name string) string {
	if v := VolumePrefix + name; isDNSLabel(v) {
		return v
	}
	// 80 bits of the name's hash: no tenant finds two names of one volume (a 32-bit hash
	// gave one pair in 2^16 tries, and both credentials one volume and one configuration).
	sum := sha256.Sum256([]byte(name))
	short := strings.NewReplacer(".", "-").Replace(name)
	if len(short) > 30 {
		short = short[:30]
	}
	return VolumePrefix + "-" + strings.Trim(short, "-") + "-" + hex.EncodeToString(sum[:10])
}
