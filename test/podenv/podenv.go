package podenv

import (
	"bytes"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Container is a container as its process sees it, materialised under Root.
type Container struct {
	// Env is the container's environment. A value that is a path inside one of the container's
	// Secret volume mounts is rewritten to where that path was written under Root; so is such
	// a path inside a mounted file (an AWS config file's credential_process), as a process
	// in the container's mount namespace would find it.
	Env map[string]string
	// Files lists every file written, as paths under Root, sorted.
	Files []string
	// Root is the directory that stands for the container's "/".
	Root string
	// mounts are the container paths of the materialised Secret volume mounts.
	mounts      []string
	tokens      TokenSource
	annotations map[string]string
}

// HostPath returns where container path p was materialised: under Root when p lies inside one of
// the container's Secret volume mounts, p itself otherwise. Use it for paths embedded in a
// larger value, such as the -i argument of GIT_SSH_COMMAND.
func (c *Container) HostPath(p string) string {
	if !path.IsAbs(p) {
		return p
	}
	clean := path.Clean(p)
	for _, m := range c.mounts {
		if clean == m || strings.HasPrefix(clean, m+"/") {
			return filepath.Join(c.Root, filepath.FromSlash(clean))
		}
	}
	return p
}

// Materialise builds the container or init container called name of spec. Secrets are found by
// name (the pod's namespace is assumed); their StringData is merged over Data as the API server
// does. Like the kubelet, it fails on a missing Secret or key that is not optional, and leaves a
// variable unset when an optional one is missing.
//
// Not modelled: $(VAR) expansion, env sources other than secretKeyRef (an error), subPath (an
// error), volumes other than Secret volumes (skipped; MaterialiseWith writes projected
// service-account tokens), fsGroup ownership and the ..data symlinks
// of the kubelet's atomic writer. Materialising again into the same Root updates the files,
// each replaced atomically, as the kubelet does when a Secret changes.
func Materialise(spec *corev1.PodSpec, name string, secrets []*corev1.Secret, root string) (*Container, error) {
	return MaterialiseWith(spec, name, Sources{Secrets: secrets}, root)
}

// TokenSource issues a service-account token, as the kubelet does through the API server's
// TokenRequest.
type TokenSource func(serviceAccount, audience string, expirationSeconds int64) ([]byte, error)

// Sources are what the kubelet would read a container's environment and volumes from.
type Sources struct {
	// Secrets are the pod namespace's Secrets, by name.
	Secrets []*corev1.Secret
	// Tokens, if set, issues the tokens of projected service-account token volumes; nil
	// skips projected volumes.
	Tokens TokenSource
	// Annotations are the pod's, which projected downwardAPI items may read
	// (metadata.annotations['key']).
	Annotations map[string]string
}

// MaterialiseWith is Materialise with more sources: projected service-account tokens are
// written too.
func MaterialiseWith(spec *corev1.PodSpec, name string, src Sources, root string) (*Container, error) {
	secrets := src.Secrets
	ctr := findContainer(spec, name)
	if ctr == nil {
		return nil, fmt.Errorf("pod has no container %q", name)
	}
	data := make(map[string]map[string][]byte, len(secrets))
	for _, s := range secrets {
		d := maps.Clone(s.Data)
		if d == nil {
			d = map[string][]byte{}
		}
		for k, v := range s.StringData {
			d[k] = []byte(v)
		}
		data[s.Name] = d
	}
	c := &Container{Env: map[string]string{}, Root: root, tokens: src.Tokens, annotations: src.Annotations}
	for _, m := range ctr.VolumeMounts {
		if err := c.mount(spec, m, data); err != nil {
			return nil, fmt.Errorf("container %s: mount %s: %w", name, m.MountPath, err)
		}
	}
	if err := c.rebaseFiles(); err != nil {
		return nil, fmt.Errorf("container %s: %w", name, err)
	}
	for _, from := range ctr.EnvFrom {
		if from.SecretRef == nil {
			return nil, fmt.Errorf("container %s: envFrom: only secretRef is supported", name)
		}
		sec, ok := data[from.SecretRef.Name]
		if !ok && !isTrue(from.SecretRef.Optional) {
			return nil, fmt.Errorf("container %s: envFrom: secret %q not found", name, from.SecretRef.Name)
		}
		for k, v := range sec {
			c.Env[from.Prefix+k] = c.HostPath(string(v))
		}
	}
	for _, e := range ctr.Env {
		v, ok, err := envValue(e, data)
		if err != nil {
			return nil, fmt.Errorf("container %s: env %s: %w", name, e.Name, err)
		}
		if ok {
			c.Env[e.Name] = c.HostPath(v)
		}
	}
	slices.Sort(c.Files)
	return c, nil
}

func findContainer(spec *corev1.PodSpec, name string) *corev1.Container {
	for _, list := range [][]corev1.Container{spec.InitContainers, spec.Containers} {
		if i := slices.IndexFunc(list, func(c corev1.Container) bool { return c.Name == name }); i >= 0 {
			return &list[i]
		}
	}
	return nil
}

// envValue returns the value of e; ok is false when e reads an optional key that is missing.
func envValue(e corev1.EnvVar, data map[string]map[string][]byte) (v string, ok bool, err error) {
	if e.ValueFrom == nil {
		return e.Value, true, nil
	}
	ref := e.ValueFrom.SecretKeyRef
	if ref == nil {
		return "", false, fmt.Errorf("only value and valueFrom.secretKeyRef are supported")
	}
	b, ok := data[ref.Name][ref.Key]
	switch {
	case ok:
		return string(b), true, nil
	case isTrue(ref.Optional):
		return "", false, nil
	case data[ref.Name] == nil:
		return "", false, fmt.Errorf("secret %q not found", ref.Name)
	}
	return "", false, fmt.Errorf("secret %q has no key %q", ref.Name, ref.Key)
}

// mount writes the Secret volume behind m under Root; other kinds of volume are skipped.
func (c *Container) mount(spec *corev1.PodSpec, m corev1.VolumeMount, data map[string]map[string][]byte) error {
	i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
	if i < 0 {
		return fmt.Errorf("pod has no volume %q", m.Name)
	}
	src, projected := spec.Volumes[i].Secret, spec.Volumes[i].Projected
	if projected == nil || c.tokens == nil {
		projected = nil
	}
	if src == nil && projected == nil {
		return nil // not materialised
	}
	if m.SubPath != "" || m.SubPathExpr != "" {
		return fmt.Errorf("subPath is not supported")
	}
	if !path.IsAbs(m.MountPath) {
		return fmt.Errorf("mountPath must be absolute")
	}
	if projected != nil {
		return c.mountTokens(spec, m, projected)
	}
	sec, ok := data[src.SecretName]
	if !ok && !isTrue(src.Optional) {
		return fmt.Errorf("secret %q not found", src.SecretName)
	}
	mode := corev1.SecretVolumeSourceDefaultMode
	if src.DefaultMode != nil {
		mode = *src.DefaultMode
	}
	items := src.Items
	if len(items) == 0 {
		for _, k := range slices.Sorted(maps.Keys(sec)) {
			items = append(items, corev1.KeyToPath{Key: k, Path: k})
		}
	}
	mountPath := path.Clean(m.MountPath)
	dir := filepath.Join(c.Root, filepath.FromSlash(mountPath))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	c.mounts = append(c.mounts, mountPath)
	for _, it := range items {
		if !filepath.IsLocal(it.Path) {
			return fmt.Errorf("item path %q must be relative and may not contain '..'", it.Path)
		}
		b, ok := sec[it.Key]
		if !ok {
			if isTrue(src.Optional) {
				continue
			}
			return fmt.Errorf("secret %q has no key %q", src.SecretName, it.Key)
		}
		perm := mode
		if it.Mode != nil {
			perm = *it.Mode
		}
		if err := writeFile(filepath.Join(dir, filepath.FromSlash(it.Path)), b, fs.FileMode(perm)); err != nil {
			return err
		}
		c.Files = append(c.Files, filepath.Join(dir, filepath.FromSlash(it.Path)))
	}
	return nil
}

// mountTokens writes the service-account tokens of projected volume p under Root, and the
// files its downwardAPI sources project from the pod's annotations; its other sources are
// skipped.
func (c *Container) mountTokens(spec *corev1.PodSpec, m corev1.VolumeMount, p *corev1.ProjectedVolumeSource) error {
	mountPath := path.Clean(m.MountPath)
	dir := filepath.Join(c.Root, filepath.FromSlash(mountPath))
	c.mounts = append(c.mounts, mountPath)
	mode := corev1.ProjectedVolumeSourceDefaultMode
	if p.DefaultMode != nil {
		mode = *p.DefaultMode
	}
	for _, src := range p.Sources {
		if d := src.DownwardAPI; d != nil {
			if err := c.mountAnnotations(dir, d, mode); err != nil {
				return err
			}
			continue
		}
		t := src.ServiceAccountToken
		if t == nil {
			continue
		}
		if !filepath.IsLocal(t.Path) {
			return fmt.Errorf("token path %q must be relative and may not contain '..'", t.Path)
		}
		exp := int64(3600)
		if t.ExpirationSeconds != nil {
			exp = *t.ExpirationSeconds
		}
		tok, err := c.tokens(spec.ServiceAccountName, t.Audience, exp)
		if err != nil {
			return fmt.Errorf("service-account token for audience %q: %w", t.Audience, err)
		}
		f := filepath.Join(dir, filepath.FromSlash(t.Path))
		if err := writeFile(f, tok, fs.FileMode(mode)); err != nil {
			return err
		}
		c.Files = append(c.Files, f)
	}
	return nil
}

// mountAnnotations writes the items of d that read a pod annotation under dir; other fields
// are an error (podenv does not materialise them).
func (c *Container) mountAnnotations(dir string, d *corev1.DownwardAPIProjection, mode int32) error {
	for _, it := range d.Items {
		if it.FieldRef == nil {
			return fmt.Errorf("downwardAPI item %q: only fieldRef is supported", it.Path)
		}
		key, ok := annotationKey(it.FieldRef.FieldPath)
		if !ok {
			return fmt.Errorf("downwardAPI item %q: only metadata.annotations['…'] is supported, not %s", it.Path, it.FieldRef.FieldPath)
		}
		if !filepath.IsLocal(it.Path) {
			return fmt.Errorf("downwardAPI path %q must be relative and may not contain '..'", it.Path)
		}
		m := mode
		if it.Mode != nil {
			m = *it.Mode
		}
		f := filepath.Join(dir, filepath.FromSlash(it.Path))
		if err := writeFile(f, []byte(c.annotations[key]), fs.FileMode(m)); err != nil {
			return err
		}
		c.Files = append(c.Files, f)
	}
	return nil
}

// rebaseFiles rewrites, in every file written, the container paths of the mounts to where
// they were written under Root.
func (c *Container) rebaseFiles() error {
	for _, f := range c.Files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		out := b
		for _, m := range c.mounts {
			out = bytes.ReplaceAll(out, []byte(m+"/"), []byte(filepath.Join(c.Root, filepath.FromSlash(m))+"/"))
		}
		if !bytes.Equal(out, b) {
			st, err := os.Stat(f)
			if err != nil {
				return err
			}
			if err := writeFile(f, out, st.Mode().Perm()); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeFile writes b to p with exactly perm (os.WriteFile alone is subject to the umask),
// replacing p atomically: a reader sees the old file or the new one, never a mix.
func writeFile(p string, b []byte, perm fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := p + ".tmp"
	_ = os.Remove(tmp)
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

func isTrue(b *bool) bool { return b != nil && *b }

// annotationKey returns the key of a metadata.annotations['key'] field path.
func annotationKey(fieldPath string) (string, bool) {
	key, ok := strings.CutPrefix(fieldPath, "metadata.annotations['")
	if !ok {
		return "", false
	}
	return strings.CutSuffix(key, "']")
}
