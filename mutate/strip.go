package mutate

import (
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/credgate/credgate/credential"
	"github.com/credgate/credgate/workload"
)

// Stripped counts what Strip removed.
type Stripped struct {
	Env         int `json:"env,omitempty"`
	Mounts      int `json:"mounts,omitempty"`
	Volumes     int `json:"volumes,omitempty"`
	PullSecrets int `json:"pullSecrets,omitempty"`
}

// InjectedNames returns the credential names a credgate.dev/injected value lists, as Annotation
// writes it ("aws,hf sha256:1a2b3c4d5e6f7a8b" gives aws and hf), and whether v has that form.
func InjectedNames(v string) ([]string, bool) {
	list, hash, ok := strings.Cut(v, " ")
	if !ok || !strings.HasPrefix(hash, "sha256:") {
		return nil, false
	}
	if list == "" {
		return nil, true
	}
	return strings.Split(list, ","), true
}

// Strip removes from t what an earlier injection recognisably added — a pod created from a
// template that an earlier version of credgate injected carries it — so that Apply then gives
// the pod exactly what the current credentials inject. listed are the credentials its
// credgate.dev/injected annotation names, resolved as they are now (those that still exist);
// targets are the containers that get credentials now. Strip removes:
//
//   - in the target containers, every variable that reads (secretKeyRef) the Secret of a listed
//     credential, and every variable a listed credential injects now under the same name when the
//     pod's is a literal or a Secret key: with that credential requested, conflicting-env refused
//     any definition of the pod's own, so it can only be an earlier injection (from a Secret or
//     key since renamed, or a literal since changed). For an overridable literal, which a pod may
//     set itself, only the credential's exact literal is removed;
//   - every secret volume, and projected service-account token (with the configuration it
//     projects from a credgate.dev/ annotation, and that annotation), named credgate-… (names
//     credgate reserves), and every mount of one in any container;
//   - the image-pull secrets naming the Secret of a listed credential;
//   - the annotation.
//
// A listed credential the pod no longer requests (requested, when not nil, names those it does)
// vouches for nothing by name: only its exact definitions, and variables reading its Secret,
// are removed — else a tenant listing a Credential of its own that "injects" HTTPS_PROXY
// would have credgate strip what another webhook set.
//
// What it cannot tell from the pod's own definitions stays: a literal no listed credential sets
// any longer (or an overridable one of another value), a variable reading a Secret no listed
// credential names any longer, anything in a container that is not a target. Strip is pure.
func Strip(t workload.Template, listed []credential.Resolved, requested []string, targets []string) Stripped {
	var s Stripped
	secrets := map[string]bool{}
	for i := range listed {
		if listed[i].SecretName != "" {
			secrets[listed[i].SecretName] = true
		}
	}
	forEachTarget(t.Spec, targets, func(ctr *corev1.Container) {
		n := len(ctr.Env)
		ctr.Env = slices.DeleteFunc(ctr.Env, func(v corev1.EnvVar) bool { return earlierEnv(v, listed, requested, secrets) })
		s.Env += n - len(ctr.Env)
	})

	volumes := map[string]bool{}
	var configs []string // the annotations stripped volumes projected a configuration from
	n := len(t.Spec.Volumes)
	t.Spec.Volumes = slices.DeleteFunc(t.Spec.Volumes, func(v corev1.Volume) bool {
		if !strings.HasPrefix(v.Name, credential.VolumePrefix) {
			return false
		}
		ok, config := credgateVolume(v)
		if ok {
			volumes[v.Name] = true
			if config != "" {
				configs = append(configs, config)
			}
		}
		return ok
	})
	s.Volumes = n - len(t.Spec.Volumes)
	if len(volumes) > 0 {
		unmount := func(mounts []corev1.VolumeMount) []corev1.VolumeMount {
			n := len(mounts)
			mounts = slices.DeleteFunc(mounts, func(m corev1.VolumeMount) bool { return volumes[m.Name] })
			s.Mounts += n - len(mounts)
			return mounts
		}
		for i := range t.Spec.InitContainers {
			t.Spec.InitContainers[i].VolumeMounts = unmount(t.Spec.InitContainers[i].VolumeMounts)
		}
		for i := range t.Spec.Containers {
			t.Spec.Containers[i].VolumeMounts = unmount(t.Spec.Containers[i].VolumeMounts)
		}
		for i := range t.Spec.EphemeralContainers {
			c := &t.Spec.EphemeralContainers[i].EphemeralContainerCommon
			c.VolumeMounts = unmount(c.VolumeMounts)
		}
	}

	n = len(t.Spec.ImagePullSecrets)
	t.Spec.ImagePullSecrets = slices.DeleteFunc(t.Spec.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return secrets[r.Name] })
	s.PullSecrets = n - len(t.Spec.ImagePullSecrets)

	delete(t.Meta.Annotations, workload.InjectedAnnotation)
	for _, k := range configs {
		delete(t.Meta.Annotations, k)
	}
	return s
}

// earlierEnv reports whether the container variable v is one an earlier injection of listed
// added (see Strip).
func earlierEnv(v corev1.EnvVar, listed []credential.Resolved, requested []string, secrets map[string]bool) bool {
	literal := v.ValueFrom == nil
	var secretKey bool
	if f := v.ValueFrom; f != nil && f.SecretKeyRef != nil && f.FieldRef == nil && f.ResourceFieldRef == nil && f.ConfigMapKeyRef == nil {
		if secrets[f.SecretKeyRef.Name] {
			return true
		}
		secretKey = v.Value == ""
	}
	if !literal && !secretKey {
		return false
	}
	for i := range listed {
		c := &listed[i]
		for _, e := range c.Env {
			if e.Name != v.Name {
				continue
			}
			exact := e.Overridable || requested != nil && !slices.Contains(requested, c.Name)
			if exact && !equality.Semantic.DeepEqual(v, envVar(c.SecretName, e, &secretRef{})) {
				continue
			}
			return true
		}
	}
	return false
}

// credgateVolume reports whether v has a shape credgate gives its volumes: a Secret, or a
// projected service-account token, with at most one configuration file projected from one of
// credgate's annotations; it returns that annotation, if any.
func credgateVolume(v corev1.Volume) (bool, string) {
	if v.Secret != nil {
		return true, ""
	}
	p := v.Projected
	if p == nil || len(p.Sources) == 0 || len(p.Sources) > 2 || p.Sources[0].ServiceAccountToken == nil {
		return false, ""
	}
	if len(p.Sources) == 1 {
		return true, ""
	}
	d := p.Sources[1].DownwardAPI
	if d == nil || len(d.Items) != 1 || d.Items[0].FieldRef == nil {
		return false, ""
	}
	key, ok := strings.CutPrefix(d.Items[0].FieldRef.FieldPath, "metadata.annotations['")
	if !ok {
		return false, ""
	}
	// Only the annotation credgate writes the configuration of this volume to.
	if key, ok = strings.CutSuffix(key, "']"); !ok || key != credgateAnnotationPrefix+v.Name {
		return false, ""
	}
	return true, key
}
