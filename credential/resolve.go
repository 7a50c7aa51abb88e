package credential

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"regexp"
	"slices"
	"strings"

	"github.com/credgate/credgate/api/v1alpha1"
)

var (
	envNameRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	secretKeyRE = regexp.MustCompile(`^[-._a-zA-Z0-9]+$`)
	// Paths are limited to characters that need no quoting in a shell (GIT_SSH_COMMAND).
	mountPathRE = regexp.MustCompile(`^/[-._a-zA-Z0-9/]*$`)
	itemPathRE  = regexp.MustCompile(`^[-._a-zA-Z0-9/]+$`)
	regionRE    = regexp.MustCompile(`^[a-z0-9-]+$`)
	endpointRE  = regexp.MustCompile(`^https?://`)
	// credNameRE is a lowercase DNS subdomain that is also a valid label-key name.
	credNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)
)

// Limits on the IAM documents a Credential declares, which policies read on every admission:
// IAM's and STS's own limits, so that no real document is refused.
const (
	MaxPolicyDocumentBytes = 10240
	MaxSessionPolicyBytes  = 2048
)

// Validate returns every problem with c that the API server's schema would refuse, so offline
// evaluation refuses the same objects the cluster does. A nil result means c is valid.
func Validate(c *v1alpha1.Credential) []string {
	var errs []string
	add := func(format string, a ...any) { errs = append(errs, fmt.Sprintf(format, a...)) }
	if len(c.Name) > 63 || !credNameRE.MatchString(c.Name) {
		add("metadata.name %q must be a lowercase DNS name of at most 63 characters: it becomes the label key credentials.credgate.dev/<name>", c.Name)
	}
	s := &c.Spec
	if _, ok := presets[s.Type]; !ok && s.Type != "" { // the schema defaults "" to generic
		add("spec.type %q is not one of %s", s.Type, joinTypes())
	}
	mode := AWSMode(s)
	if s.SecretRef == nil && s.Type != v1alpha1.TypeGeneric && s.Type != "" && mode == v1alpha1.AWSStatic {
		add("spec.secretRef is required for type %s", s.Type)
	}
	if s.SecretRef != nil && s.SecretRef.Name == "" {
		add("spec.secretRef.name must not be empty")
	}
	if pd := s.Access.PolicyDocument; pd != nil && len(pd.Raw) > MaxPolicyDocumentBytes {
		add("spec.access.policyDocument is %d bytes; at most %d are accepted (IAM's own limit on an inline policy)", len(pd.Raw), MaxPolicyDocumentBytes)
	}
	if s.AWS != nil && s.AWS.SessionPolicy != nil && len(s.AWS.SessionPolicy.Raw) > MaxSessionPolicyBytes {
		add("spec.aws.sessionPolicy is %d bytes; at most %d are accepted (STS's own limit on a session policy)", len(s.AWS.SessionPolicy.Raw), MaxSessionPolicyBytes)
	}
	seenEnv := map[string]bool{}
	for i, e := range s.Env {
		if seenEnv[e.Name] {
			add("spec.env[%d]: variable %s is listed twice", i, e.Name)
		}
		seenEnv[e.Name] = true
		if !envNameRE.MatchString(e.Name) {
			add("spec.env[%d].name %q must be a C identifier ([A-Za-z_][A-Za-z0-9_]*)", i, e.Name)
		}
		if (e.Key == nil) == (e.Value == nil) {
			add("spec.env[%d] (%s): set exactly one of key (from the Secret) or value (a literal)", i, e.Name)
		}
		if e.Key != nil && !secretKeyRE.MatchString(*e.Key) {
			add("spec.env[%d].key %q is not a valid Secret key", i, *e.Key)
		}
		if e.Key != nil && s.SecretRef == nil {
			add("spec.env[%d] (%s) reads key %q but spec.secretRef is not set", i, e.Name, *e.Key)
		}
		if e.Overridable && e.Value == nil {
			add("spec.env[%d] (%s): only literal values can be overridable", i, e.Name)
		}
	}
	if f := s.Files; f != nil {
		if f.MountPath != "" && !mountPathRE.MatchString(f.MountPath) {
			add("spec.files.mountPath %q must be an absolute path of letters, digits, '-', '_', '.' and '/'", f.MountPath)
		}
		if s.SecretRef == nil {
			add("spec.files needs spec.secretRef")
		}
		seenKey := map[string]bool{}
		for i, it := range f.Items {
			if !secretKeyRE.MatchString(it.Key) {
				add("spec.files.items[%d].key %q is not a valid Secret key", i, it.Key)
			}
			if seenKey[it.Key] {
				add("spec.files.items[%d]: key %s is listed twice", i, it.Key)
			}
			seenKey[it.Key] = true
			if it.Path == "" || strings.HasPrefix(it.Path, "/") || hasDotDot(it.Path) || !itemPathRE.MatchString(it.Path) {
				add("spec.files.items[%d].path %q must be relative to mountPath, of letters, digits, '-', '_', '.' and '/', without '..'", i, it.Path)
			}
			if s.Type == v1alpha1.TypeKaggle && it.Key == "kaggle.json" && path.Base(it.Path) != "kaggle.json" {
				add("spec.files.items[%d].path %q: the Kaggle CLI reads a file named kaggle.json", i, it.Path)
			}
			if it.Mode != nil && (*it.Mode < 0 || *it.Mode > 0o777) {
				add("spec.files.items[%d].mode %#o is out of range (0 to 0777)", i, *it.Mode)
			}
		}
	}
	if s.ImagePullSecret != nil && *s.ImagePullSecret && s.SecretRef == nil {
		add("spec.imagePullSecret needs spec.secretRef")
	}
	if s.Type == v1alpha1.TypeS3Compatible && (s.AWS == nil || s.AWS.Endpoint == "") {
		add("type s3-compatible needs spec.aws.endpoint")
	}
	if a := s.AWS; a != nil {
		if a.Region != "" && !regionRE.MatchString(a.Region) {
			add("spec.aws.region %q must be a region name such as eu-west-1", a.Region)
		}
		if a.Endpoint != "" && !endpointRE.MatchString(a.Endpoint) {
			add("spec.aws.endpoint %q must be an http:// or https:// URL", a.Endpoint)
		}
		errs = append(errs, validateAWSMode(s)...)
	}
	if s.Type == v1alpha1.TypeDatabase && s.Database == nil {
		add("type database needs spec.database.kind")
	}
	if d := s.Database; d != nil {
		switch d.Kind {
		case v1alpha1.DatabasePostgres, v1alpha1.DatabaseMySQL, v1alpha1.DatabaseMongoDB:
		default:
			add("spec.database.kind %q is not one of postgres, mysql, mongodb", d.Kind)
		}
	}
	switch s.Access.Level {
	case "", v1alpha1.AccessReadOnly, v1alpha1.AccessReadWrite, v1alpha1.AccessAdmin:
	default:
		add("spec.access.level %q is not one of read-only, read-write, admin", s.Access.Level)
	}
	return errs
}

func hasDotDot(p string) bool {
	for _, part := range strings.Split(p, "/") {
		if part == ".." {
			return true
		}
	}
	return false
}

func joinTypes() string {
	names := make([]string, 0, len(presets))
	for _, t := range Types() {
		names = append(names, string(t))
	}
	return strings.Join(names, ", ")
}

// ErrInvalid wraps the problems Validate found.
var ErrInvalid = errors.New("invalid credential")

// Resolve applies c's preset and merges c's own env and files over it. It returns ErrInvalid
// (wrapped, with every problem listed) for a Credential the schema would refuse.
func Resolve(c *v1alpha1.Credential) (Resolved, error) {
	if errs := Validate(c); len(errs) > 0 {
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
// credgate-<name> can have (a name begins with a letter or digit), then the name's first 40
// characters with dots made dashes, then 8 hex digits of the SHA-256 of the whole name. So two
// credentials never share a volume ("a.b" and "a-b-2e7336dc" once did, and a.b's files were
// silently not mounted), and every name fits the 63 characters of a DNS label.
func VolumeName(name string) string {
	if v := VolumePrefix + name; isDNSLabel(v) {
		return v
	}
	sum := sha256.Sum256([]byte(name))
	short := strings.NewReplacer(".", "-").Replace(name)
	if len(short) > 40 {
		short = short[:40]
	}
	return VolumePrefix + "-" + strings.Trim(short, "-") + "-" + hex.EncodeToString(sum[:4])
}
