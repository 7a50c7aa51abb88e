package mutate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/credgate/credgate/credential"
	"github.com/credgate/credgate/workload"
)

// Conflict is something mutate left as the pod had it, rather than overwrite: a variable the
// container already sets differently, or a volume name or mount path already in use. The policy
// layer decides whether a conflict refuses the pod; mutate only reports it.
type Conflict struct {
	Credential string `json:"credential"`
	Container  string `json:"container,omitempty"` // empty for pod-level conflicts
	Message    string `json:"message"`
}

// Apply injects creds (sorted by name, as the webhook resolves them) into the containers
// named by targets, and returns what it left alone. Variables are appended in credential
// order, after the container's own; a container's existing definition is never overwritten.
func Apply(t workload.Template, creds []credential.Resolved, targets []string) []Conflict {
	if len(creds) == 0 {
		return nil
	}
	// Each target's list of variables grows once, to hold every credential's.
	n := 0
	for i := range creds {
		n += len(creds[i].Env)
	}
	forEachTarget(t.Spec, targets, func(ctr *corev1.Container) { ctr.Env = slices.Grow(ctr.Env, n) })
	var conflicts []Conflict
	for i := range creds {
		c := &creds[i]
		mountVolume := true
		if c.Files != nil {
			var cf *Conflict
			mountVolume, cf = addVolume(t.Spec, c)
			if cf != nil {
				conflicts = append(conflicts, *cf)
			}
		}
		forEachTarget(t.Spec, targets, func(ctr *corev1.Container) {
			conflicts = appendEnv(ctr, c, conflicts)
			if c.Files != nil && mountVolume {
				conflicts = addMount(ctr, c, conflicts)
			}
		})
		if c.ImagePullSecret && c.SecretName != "" {
			addPullSecret(t.Spec, c.SecretName)
		}
	}
	if t.Meta.Annotations == nil {
		t.Meta.Annotations = make(map[string]string, 1)
	}
	for i := range creds {
		// A configuration the credential's projected volume reads from the pod's metadata.
		if f := creds[i].Files; f != nil && f.Config != nil {
			t.Meta.Annotations[f.Config.Annotation] = f.Config.Content
		}
	}
	t.Meta.Annotations[workload.InjectedAnnotation] = Annotation(creds)
	return conflicts
}

// Annotation is the value of credgate.dev/injected for creds: their names and a hash of what
// they inject, e.g. "aws,hf,wandb sha256:1a2b3c4d5e6f7a8b". It holds no secret value.
func Annotation(creds []credential.Resolved) string {
	names := make([]string, len(creds))
	h := sha256.New()
	for i := range creds {
		names[i] = creds[i].Name
		h.Write([]byte(creds[i].Hash))
	}
	return strings.Join(names, ",") + " sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
}

func forEachTarget(spec *corev1.PodSpec, targets []string, fn func(*corev1.Container)) {
	for i := range spec.InitContainers {
		if slices.Contains(targets, spec.InitContainers[i].Name) {
			fn(&spec.InitContainers[i])
		}
	}
	for i := range spec.Containers {
		if slices.Contains(targets, spec.Containers[i].Name) {
			fn(&spec.Containers[i])
		}
	}
}

// envVar is the variable e of a credential whose Secret is secret; the reference of one from
// the Secret is built in ref.
func envVar(secret string, e credential.Env, ref *secretRef) corev1.EnvVar {
	if !e.FromSecret() {
		return corev1.EnvVar{Name: e.Name, Value: e.Value}
	}
	ref.key = corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: e.Key}
	if e.Optional {
		ref.optional = true
		ref.key.Optional = &ref.optional
	}
	ref.source.SecretKeyRef = &ref.key
	return corev1.EnvVar{Name: e.Name, ValueFrom: &ref.source}
}

// secretRef holds what a variable from a Secret points to, so that the variables of one
// credential in one container take one allocation, not two or three each.
type secretRef struct {
	source   corev1.EnvVarSource
	key      corev1.SecretKeySelector
	optional bool
}

func appendEnv(ctr *corev1.Container, c *credential.Resolved, conflicts []Conflict) []Conflict {
	var refs []secretRef // at the first variable from the Secret: one for each variable
	for i, e := range c.Env {
		var ref *secretRef
		if e.FromSecret() {
			if refs == nil {
				refs = make([]secretRef, len(c.Env))
			}
			ref = &refs[i]
		}
		want := envVar(c.SecretName, e, ref)
		i := slices.IndexFunc(ctr.Env, func(v corev1.EnvVar) bool { return v.Name == e.Name })
		switch {
		case i < 0:
			ctr.Env = append(ctr.Env, want)
		case equality.Semantic.DeepEqual(ctr.Env[i], want):
			// Already injected (re-invocation) or set identically by the user.
		case e.Overridable:
			// The container's own value wins over an overridable literal.
		default:
			conflicts = append(conflicts, Conflict{Credential: c.Name, Container: ctr.Name,
				Message: fmt.Sprintf("container %q already sets %s; credgate left the container's definition in place", ctr.Name, e.Name)})
		}
	}
	return conflicts
}

func volume(c *credential.Resolved) corev1.Volume {
	f := c.Files
	if t := f.Token; t != nil {
		tok := &corev1.ServiceAccountTokenProjection{Audience: t.Audience, ExpirationSeconds: new(t.ExpirationSeconds), Path: t.Path}
		sources := []corev1.VolumeProjection{{ServiceAccountToken: tok}}
		if cf := f.Config; cf != nil {
			sources = append(sources, corev1.VolumeProjection{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{
				Path: cf.Path, FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.annotations['" + cf.Annotation + "']"}}}}})
		}
		return corev1.Volume{Name: f.VolumeName, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: sources, DefaultMode: new(f.DefaultMode)}}}
	}
	src := &corev1.SecretVolumeSource{SecretName: c.SecretName, DefaultMode: new(f.DefaultMode)}
	for _, it := range f.Items {
		src.Items = append(src.Items, corev1.KeyToPath{Key: it.Key, Path: it.Path, Mode: new(it.Mode)})
	}
	return corev1.Volume{Name: f.VolumeName, VolumeSource: corev1.VolumeSource{Secret: src}}
}

// addVolume adds c's secret volume unless the pod has it; ok is false when the pod already
// uses the name for something else, and then nothing may be mounted from it.
func addVolume(spec *corev1.PodSpec, c *credential.Resolved) (ok bool, conflict *Conflict) {
	want := volume(c)
	i := slices.IndexFunc(spec.Volumes, func(v corev1.Volume) bool { return v.Name == want.Name })
	switch {
	case i < 0:
		spec.Volumes = append(spec.Volumes, want)
		return true, nil
	case equality.Semantic.DeepEqual(spec.Volumes[i], want):
		return true, nil
	}
	return false, &Conflict{Credential: c.Name,
		Message: fmt.Sprintf("the pod already has a volume named %q, which credgate reserves for credential %s; rename the pod's volume", want.Name, c.Name)}
}

func addMount(ctr *corev1.Container, c *credential.Resolved, conflicts []Conflict) []Conflict {
	want := corev1.VolumeMount{Name: c.Files.VolumeName, MountPath: c.Files.MountPath, ReadOnly: true}
	for _, m := range ctr.VolumeMounts {
		switch {
		case equality.Semantic.DeepEqual(m, want):
			return conflicts
		case m.Name == want.Name || m.MountPath == want.MountPath:
			return append(conflicts, Conflict{Credential: c.Name, Container: ctr.Name,
				Message: fmt.Sprintf("container %q already mounts %s at %s; credgate did not mount credential %s there", ctr.Name, m.Name, m.MountPath, c.Name)})
		}
	}
	ctr.VolumeMounts = append(ctr.VolumeMounts, want)
	return conflicts
}

func addPullSecret(spec *corev1.PodSpec, name string) {
	for _, s := range spec.ImagePullSecrets {
		if s.Name == name {
			return
		}
	}
	spec.ImagePullSecrets = append(spec.ImagePullSecrets, corev1.LocalObjectReference{Name: name})
}
