package mutate_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	gomodjsonpatch "gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
	"github.com/credgate/credgate/mutate"
	"github.com/credgate/credgate/workload"
)

// strippedGolden is what a golden file of testdata/golden/earlier-* holds: what Strip removed,
// the conflicts Apply then reported, and the pod.
type strippedGolden struct {
	Stripped  mutate.Stripped   `json:"stripped"`
	Conflicts []mutate.Conflict `json:"conflicts,omitempty"`
	Pod       *corev1.Pod       `json:"pod"`
}

// TestStripGolden: each pod under testdata/earlier carries an injection by an earlier
// credgate, of Credentials that have changed since (its comment says how). Strip, with the
// credentials its annotation lists as they are now, then Apply, as the review does, give
// testdata/golden/earlier-<name>.yaml (go test -update rewrites them).
func TestStripGolden(t *testing.T) {
	creds := loadCredentials(t)
	entries, err := os.ReadDir(filepath.Join("testdata", "earlier"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".yaml")
		t.Run(name, func(t *testing.T) {
			pod := loadPod(t, filepath.Join("testdata", "earlier", e.Name()))
			stripped, conflicts := stripThenApply(t, pod, creds)
			got, err := yaml.Marshal(strippedGolden{Stripped: stripped, Conflicts: conflicts, Pod: pod})
			if err != nil {
				t.Fatal(err)
			}
			compareGolden(t, filepath.Join("testdata", "golden", "earlier-"+name+".yaml"), got)
			// Taken away and injected afresh, the pod is settled: injecting again changes nothing.
			again := pod.DeepCopy()
			apply(t, again, creds)
			if diff := cmp.Diff(pod, again); diff != "" {
				t.Errorf("Apply changes the pod again (-once +twice):\n%s", diff)
			}
		})
	}
}

// TestStripUndoesApply: Strip recognises all that Apply adds. For every pod under
// testdata/pods that Apply injects without a conflict, stripping what Apply injected (the
// credentials its annotation lists) gives back the pod as submitted, but for an image-pull
// secret of the pod's own that names a credential's Secret (the same reference credgate
// writes), and injecting again gives the injected pod, up to the order of image-pull secrets. A
// pod that sets a credential's variable itself is refused (conflicting-env) unless that rule is
// only warned or audited; Strip then takes its definition for an earlier injection's.
func TestStripUndoesApply(t *testing.T) {
	creds := loadCredentials(t)
	entries, err := os.ReadDir(filepath.Join("testdata", "pods"))
	if err != nil {
		t.Fatal(err)
	}
	pullSecrets := cmpopts.SortSlices(func(a, b corev1.LocalObjectReference) bool { return a.Name < b.Name })
	tested := 0
	for _, e := range entries {
		// A pod Apply reports conflicts for is refused by conflicting-env: never injected, it
		// has no injection to undo.
		if conflicts := apply(t, loadPod(t, filepath.Join("testdata", "pods", e.Name())), creds); len(conflicts) > 0 {
			continue
		}
		tested++
		t.Run(e.Name(), func(t *testing.T) {
			submitted := loadPod(t, filepath.Join("testdata", "pods", e.Name()))
			injected := submitted.DeepCopy()
			apply(t, injected, creds)
			pod := injected.DeepCopy()
			stripThenApply(t, pod, creds)
			if diff := cmp.Diff(injected, pod, pullSecrets); diff != "" {
				t.Errorf("Strip then Apply differs from Apply (-apply +again):\n%s", diff)
			}
			stripped := injected.DeepCopy()
			tmpl, targets, _ := templateOf(t, stripped)
			mutate.Strip(tmpl, listedOf(t, stripped, creds), nil, targets)
			// A credgate.dev/ annotation the pod arrived with (a configuration a tenant pre-set)
			// was credgate's to overwrite: Strip removes it.
			for k := range submitted.Annotations {
				if strings.HasPrefix(k, "credgate.dev/credgate-") {
					delete(submitted.Annotations, k)
				}
			}
			if diff := cmp.Diff(submitted, stripped, cmpopts.EquateEmpty(), cmpopts.IgnoreFields(corev1.PodSpec{}, "ImagePullSecrets")); diff != "" {
				t.Errorf("Strip did not give back the submitted pod (-submitted +stripped):\n%s", diff)
			}
			for _, s := range stripped.Spec.ImagePullSecrets {
				if !slices.Contains(submitted.Spec.ImagePullSecrets, s) {
					t.Errorf("image-pull secret %s left, not the pod's own", s.Name)
				}
			}
		})
	}
	if tested < len(entries)/2 {
		t.Errorf("only %d of %d pods injected without conflicts: the round trip proves little", tested, len(entries))
	}
}

// TestStripRecognises: what Strip takes for an earlier injection, variable by variable, in a
// target container, of credentials (as they are now) that the pod's annotation lists.
func TestStripRecognises(t *testing.T) {
	creds := loadCredentials(t)
	listed := resolve(t, creds, "wandb", "aws")
	secret := func(name, key string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}}
	}
	tests := []struct {
		name string
		env  corev1.EnvVar
		want bool
	}{
		{"reads a listed credential's Secret, any name", corev1.EnvVar{Name: "MY_KEY", ValueFrom: secret("wandb-secret", "other")}, true},
		{"a listed credential's variable from a renamed Secret", corev1.EnvVar{Name: "WANDB_API_KEY", ValueFrom: secret("wandb-old", "api-key")}, true},
		{"a listed credential's variable from another key", corev1.EnvVar{Name: "AWS_ACCESS_KEY_ID", ValueFrom: secret("old-aws", "id")}, true},
		{"a listed credential's literal, changed", corev1.EnvVar{Name: "WANDB_ENTITY", Value: "old-team"}, true},
		{"a listed credential's literal, as it is", corev1.EnvVar{Name: "AWS_REGION", Value: "eu-west-1"}, true},
		{"a listed credential's overridable literal, as it is", corev1.EnvVar{Name: "WANDB_PROJECT", Value: "experiments"}, true},
		{"the pod's own value of an overridable literal", corev1.EnvVar{Name: "WANDB_PROJECT", Value: "mine"}, false},
		{"a literal no listed credential sets", corev1.EnvVar{Name: "WANDB_MODE", Value: "offline"}, false},
		{"another Secret, another name", corev1.EnvVar{Name: "DB_PASSWORD", ValueFrom: secret("db", "password")}, false},
		{"a credential's name from a field, not a shape credgate writes", corev1.EnvVar{Name: "AWS_REGION",
			ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}, false},
		{"a credential's name from a ConfigMap", corev1.EnvVar{Name: "WANDB_ENTITY",
			ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "cm"}, Key: "k"}}}, false},
		{"a variable of a credential the annotation does not list", corev1.EnvVar{Name: "HF_TOKEN", ValueFrom: secret("hf-old", "token")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "trainer", Env: []corev1.EnvVar{tt.env}}, {Name: "other", Env: []corev1.EnvVar{tt.env}}}}
			meta := metav1.ObjectMeta{Annotations: map[string]string{workload.InjectedAnnotation: "aws,wandb sha256:0123456789abcdef"}}
			s := mutate.Strip(workload.Template{Meta: &meta, Spec: &spec}, listed, nil, []string{"trainer"})
			if got := len(spec.Containers[0].Env) == 0; got != tt.want {
				t.Errorf("removed = %v, want %v", got, tt.want)
			}
			if want := 1 - len(spec.Containers[0].Env); s.Env != want {
				t.Errorf("Stripped.Env = %d, want %d", s.Env, want)
			}
			if len(spec.Containers[1].Env) != 1 {
				t.Error("a variable of a container that is not a target was removed")
			}
			if _, ok := meta.Annotations[workload.InjectedAnnotation]; ok {
				t.Error("the annotation was not removed")
			}
		})
	}
}

// TestStripVolumes: volumes under credgate's names and of credgate's shapes go, with every
// mount of them; anything else stays.
func TestStripVolumes(t *testing.T) {
	secretVol := func(name string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s"}}}
	}
	token := corev1.Volume{Name: "credgate-irsa", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token"}}}}}}
	projectedSecret := corev1.Volume{Name: "credgate-mixed", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
		Sources: []corev1.VolumeProjection{{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}}}}}}}
	cache := corev1.Volume{Name: "credgate-cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	own := secretVol("my-secret")
	spec := corev1.PodSpec{
		Volumes:        []corev1.Volume{secretVol("credgate-kaggle"), own, secretVol("credgate--team-wandb-dbd219fb"), token, projectedSecret, cache},
		InitContainers: []corev1.Container{{Name: "init", VolumeMounts: []corev1.VolumeMount{{Name: "credgate-kaggle", MountPath: "/k"}}}},
		Containers: []corev1.Container{{Name: "c", VolumeMounts: []corev1.VolumeMount{
			{Name: "credgate-irsa", MountPath: "/t"}, {Name: "my-secret", MountPath: "/m"}, {Name: "credgate-cache", MountPath: "/c"},
			{Name: "credgate-kaggle", MountPath: "/k2", SubPath: "kaggle.json"}}}},
		EphemeralContainers: []corev1.EphemeralContainer{{EphemeralContainerCommon: corev1.EphemeralContainerCommon{Name: "debug",
			VolumeMounts: []corev1.VolumeMount{{Name: "credgate--team-wandb-dbd219fb", MountPath: "/w"}}}}},
	}
	meta := metav1.ObjectMeta{}
	s := mutate.Strip(workload.Template{Meta: &meta, Spec: &spec}, nil, nil, nil)
	if diff := cmp.Diff(mutate.Stripped{Volumes: 3, Mounts: 4}, s); diff != "" {
		t.Errorf("Stripped (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]corev1.Volume{own, projectedSecret, cache}, spec.Volumes); diff != "" {
		t.Errorf("volumes (-want +got):\n%s", diff)
	}
	want := []corev1.VolumeMount{{Name: "my-secret", MountPath: "/m"}, {Name: "credgate-cache", MountPath: "/c"}}
	if diff := cmp.Diff(want, spec.Containers[0].VolumeMounts); diff != "" {
		t.Errorf("mounts (-want +got):\n%s", diff)
	}
	if len(spec.InitContainers[0].VolumeMounts)+len(spec.EphemeralContainers[0].VolumeMounts) != 0 {
		t.Errorf("mounts of removed volumes left: %v %v", spec.InitContainers[0].VolumeMounts, spec.EphemeralContainers[0].VolumeMounts)
	}
}

func TestInjectedNames(t *testing.T) {
	tests := []struct {
		value  string
		want   []string
		wantOK bool
	}{
		{"aws,hf,wandb sha256:1a2b3c4d5e6f7a8b", []string{"aws", "hf", "wandb"}, true},
		{"team.wandb sha256:1a2b3c4d5e6f7a8b", []string{"team.wandb"}, true},
		{" sha256:e3b0c44298fc1c14", nil, true},
		{"wandb", nil, false},
		{"wandb md5:0123", nil, false},
		{"", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			got, ok := mutate.InjectedNames(tt.value)
			if diff := cmp.Diff(tt.want, got); diff != "" || ok != tt.wantOK {
				t.Errorf("InjectedNames(%q) = %q, %v; want %q, %v", tt.value, got, ok, tt.want, tt.wantOK)
			}
			if tt.wantOK && len(tt.want) > 0 {
				// What Annotation writes reads back.
				var creds []credential.Resolved
				for _, n := range tt.want {
					creds = append(creds, credential.Resolved{Name: n})
				}
				if back, _ := mutate.InjectedNames(mutate.Annotation(creds)); !cmp.Equal(back, tt.want) {
					t.Errorf("InjectedNames(Annotation(%q)) = %q", tt.want, back)
				}
			}
		})
	}
}

// TestRewriteThenPatchEqualsStripAndApply is the contract of the two patches of a pod carrying
// an earlier injection: for every pod under testdata/earlier, sent with fields credgate's types
// do not know in the entries Strip keeps, Rewrite's patch of the strip applied to the
// submitted document, then Patch's of the injection, decode to exactly the pod Strip and Apply
// produced; Rewrite only removes, and every unknown field survives.
func TestRewriteThenPatchEqualsStripAndApply(t *testing.T) {
	creds := loadCredentials(t)
	entries, err := os.ReadDir(filepath.Join("testdata", "earlier"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Run(e.Name(), func(t *testing.T) {
			y, err := os.ReadFile(filepath.Join("testdata", "earlier", e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			doc, err := yaml.YAMLToJSON(y)
			if err != nil {
				t.Fatal(err)
			}
			doc = withUnknownFields(t, doc)

			pod := &corev1.Pod{}
			mustUnmarshal(t, doc, pod)
			before := &corev1.PodTemplateSpec{ObjectMeta: *pod.ObjectMeta.DeepCopy(), Spec: *pod.Spec.DeepCopy()}
			tmpl, targets, _ := templateOf(t, pod)
			mutate.Strip(tmpl, listedOf(t, pod, creds), nil, targets)
			taken, err := mutate.Rewrite(nil, before, &corev1.PodTemplateSpec{ObjectMeta: pod.ObjectMeta, Spec: pod.Spec})
			if err != nil {
				t.Fatal(err)
			}
			for _, op := range taken {
				if op.Operation != "remove" {
					t.Errorf("Rewrite has %s %s, want only removes", op.Operation, op.Path)
				}
			}
			stripped, err := mutate.ApplyPatch(doc, taken)
			if err != nil {
				t.Fatal(err)
			}
			tmpl, rec, _ := reviewRecorded(t, pod, creds)
			added, err := mutate.Patch(stripped, tmpl, rec)
			if err != nil {
				t.Fatal(err)
			}
			patched := applyOps(t, doc, append(append([]gomodjsonpatch.Operation{}, taken...), added...))
			got := &corev1.Pod{}
			mustUnmarshal(t, patched, got)
			if !equality.Semantic.DeepEqual(pod, got) {
				t.Errorf("patched document differs from Strip and Apply's pod (-typed +patched):\n%s", cmp.Diff(pod, got))
			}
			if n := strings.Count(string(patched), `"futureField":"kept"`); n != strings.Count(string(stripped), `"futureField":"kept"`) || n == 0 {
				t.Errorf("unknown fields: %d in the patched document, %d after Rewrite's patch", n, strings.Count(string(stripped), `"futureField":"kept"`))
			}
		})
	}
}

func TestRewrite(t *testing.T) {
	before := &corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "x", "credentials.credgate.dev/hf": "true", "credentials.credgate.dev/aws": "true"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Env: []corev1.EnvVar{
			{Name: "A", Value: "1"}, {Name: "B", Value: "2"}, {Name: "C", Value: "3"}, {Name: "B", Value: "2"}, {Name: "D", Value: "4"}}}}},
	}
	after := before.DeepCopy()
	after.Labels["credentials.credgate.dev/hf"] = "false"
	delete(after.Labels, "credentials.credgate.dev/aws")
	after.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "C", Value: "3"}, {Name: "B", Value: "2"}}
	ops, err := mutate.Rewrite([]string{"spec", "jobTemplate", "spec", "template"}, before, after)
	if err != nil {
		t.Fatal(err)
	}
	const p = "/spec/jobTemplate/spec/template"
	want := []gomodjsonpatch.Operation{
		{Operation: "remove", Path: p + "/metadata/labels/credentials.credgate.dev~1aws"},
		{Operation: "replace", Path: p + "/metadata/labels/credentials.credgate.dev~1hf", Value: "false"},
		{Operation: "remove", Path: p + "/spec/containers/0/env/4"},
		{Operation: "remove", Path: p + "/spec/containers/0/env/1"},
	}
	if diff := cmp.Diff(want, ops); diff != "" {
		t.Errorf("ops (-want +got):\n%s", diff)
	}
	if ops, err := mutate.Rewrite(nil, before, before.DeepCopy()); err != nil || len(ops) != 0 {
		t.Errorf("nothing changed: ops %v, err %v", ops, err)
	}
}

// TestApplyVolumeNamesNeverCollide: credentials called a.b and a-b-2e7336dc once shared a
// volume name, and a pod requesting both silently got no files of a.b. Each gets its volume.
func TestApplyVolumeNamesNeverCollide(t *testing.T) {
	files := func(name string) *v1alpha1.Credential {
		return &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: v1alpha1.CredentialSpec{
			Type: v1alpha1.TypeGeneric, SecretRef: &v1alpha1.SecretReference{Name: name + "-secret"}, Files: &v1alpha1.Files{}}}
	}
	creds := map[string]*v1alpha1.Credential{"a.b": files("a.b"), "a-b-2e7336dc": files("a-b-2e7336dc")}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{
		workload.LabelPrefix + "a.b": "true", workload.LabelPrefix + "a-b-2e7336dc": "true"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c"}}}}
	if conflicts := apply(t, pod, creds); len(conflicts) > 0 {
		t.Errorf("conflicts: %v", conflicts)
	}
	secrets := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		secrets[v.Name] = v.Secret.SecretName
	}
	want := map[string]string{"credgate-a-b-2e7336dc": "a-b-2e7336dc-secret", "credgate--a-b-2e7336dc8eba87ef472d": "a.b-secret"}
	if diff := cmp.Diff(want, secrets); diff != "" {
		t.Errorf("volumes (-want +got):\n%s", diff)
	}
	if n := len(pod.Spec.Containers[0].VolumeMounts); n != 2 {
		t.Errorf("%d mounts, want 2: %v", n, pod.Spec.Containers[0].VolumeMounts)
	}
}

// stripThenApply does to pod what the review does to a pod carrying an earlier injection:
// Strip with the credentials its annotation lists, as they are now, then Apply those it
// requests.
func stripThenApply(t *testing.T, pod *corev1.Pod, creds map[string]*v1alpha1.Credential) (mutate.Stripped, []mutate.Conflict) {
	t.Helper()
	tmpl, targets, names := templateOf(t, pod)
	s := mutate.Strip(tmpl, listedOf(t, pod, creds), nil, targets)
	return s, mutate.Apply(tmpl, resolve(t, creds, names...), targets)
}

// templateOf returns pod's template, its target containers and the credentials it requests.
func templateOf(t *testing.T, pod *corev1.Pod) (workload.Template, []string, []string) {
	t.Helper()
	tmpl, err := workload.PodTemplate(pod)
	if err != nil {
		t.Fatal(err)
	}
	targets, problem := workload.TargetContainers(tmpl)
	if problem != "" {
		t.Fatal(problem)
	}
	names, problems := workload.Requested(tmpl.Meta.Labels)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	return tmpl, targets, names
}

// listedOf resolves the credentials pod's credgate.dev/injected annotation lists.
func listedOf(t *testing.T, pod *corev1.Pod, creds map[string]*v1alpha1.Credential) []credential.Resolved {
	t.Helper()
	names, ok := mutate.InjectedNames(pod.Annotations[workload.InjectedAnnotation])
	if !ok {
		t.Fatalf("annotation %q is not credgate's", pod.Annotations[workload.InjectedAnnotation])
	}
	return resolve(t, creds, names...)
}

// withUnknownFields adds a field no version of k8s.io/api knows to every variable, mount and
// volume of the pod in doc, and to the pod's spec.
func withUnknownFields(t *testing.T, doc []byte) []byte {
	t.Helper()
	var pod map[string]any
	mustUnmarshal(t, doc, &pod)
	mark := func(list any) {
		items, _ := list.([]any)
		for _, it := range items {
			it.(map[string]any)["futureField"] = "kept"
		}
	}
	spec := pod["spec"].(map[string]any)
	spec["futureField"] = "kept"
	mark(spec["volumes"])
	for _, list := range []string{"initContainers", "containers"} {
		cs, _ := spec[list].([]any)
		for _, c := range cs {
			mark(c.(map[string]any)["env"])
			mark(c.(map[string]any)["volumeMounts"])
		}
	}
	out, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A listed credential the pod no longer requests vouches for no variable by name: a tenant
// listing a Credential of its own that "injects" HTTPS_PROXY cannot have credgate strip the
// HTTPS_PROXY another webhook set; only that credential's exact definition goes.
func TestStripUnrequestedOnlyExact(t *testing.T) {
	proxy := credential.Resolved{Name: "proxy", SecretName: "proxy-secret",
		Env: []credential.Env{{Name: "HTTPS_PROXY", Value: "http://tenant.example:3128"}, {Name: "NO_PROXY", Value: "internal"}}}
	meta := metav1.ObjectMeta{Annotations: map[string]string{workload.InjectedAnnotation: "proxy sha256:0011223344556677"}}
	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "trainer", Env: []corev1.EnvVar{
		{Name: "HTTPS_PROXY", Value: "http://corporate-proxy:3128"}, // set by another webhook
		{Name: "NO_PROXY", Value: "internal"},                       // proxy's own, exactly
	}}}}
	mutate.Strip(workload.Template{Meta: &meta, Spec: &spec}, []credential.Resolved{proxy}, []string{}, []string{"trainer"})
	want := []corev1.EnvVar{{Name: "HTTPS_PROXY", Value: "http://corporate-proxy:3128"}}
	if diff := cmp.Diff(want, spec.Containers[0].Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
}

// TestStripKeepsOtherAnnotations: Strip removes a configuration annotation only with the
// volume credgate projects it into (credgate.dev/<volume name>); a credgate-… volume that
// projects another credgate.dev/ annotation — credgate.dev/containers, which says which
// containers get credentials — is not credgate's, and neither it nor that annotation goes.
func TestStripKeepsOtherAnnotations(t *testing.T) {
	projected := func(name, key string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "a", Path: "token"}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "c.json",
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['" + key + "']"}}}}},
		}}}}
	}
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{
		workload.InjectedAnnotation: "gcs sha256:0000000000000000", "credgate.dev/containers": "a", "credgate.dev/credgate-gcs": "{}"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "a"}, {Name: "b"}},
			Volumes: []corev1.Volume{projected("credgate-zz", "credgate.dev/containers"), projected("credgate-gcs", "credgate.dev/credgate-gcs")}}}
	tmpl, err := workload.PodTemplate(pod)
	if err != nil {
		t.Fatal(err)
	}
	s := mutate.Strip(tmpl, nil, nil, []string{"a"})
	if s.Volumes != 1 || len(pod.Spec.Volumes) != 1 || pod.Spec.Volumes[0].Name != "credgate-zz" {
		t.Errorf("stripped %d volumes, left %v: want only credgate-gcs stripped", s.Volumes, pod.Spec.Volumes)
	}
	if _, ok := pod.Annotations["credgate.dev/containers"]; !ok {
		t.Error("Strip removed credgate.dev/containers")
	}
	if _, ok := pod.Annotations["credgate.dev/credgate-gcs"]; ok {
		t.Error("Strip left the configuration annotation of the volume it removed")
	}
}
