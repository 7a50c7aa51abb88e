package mutate_test

import (
	"bytes"
	"flag"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
	"github.com/credgate/credgate/mutate"
	"github.com/credgate/credgate/workload"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// golden is what a golden file holds: the conflicts mutate reported and the mutated pod.
type golden struct {
	Conflicts []mutate.Conflict `json:"conflicts,omitempty"`
	Pod       *corev1.Pod       `json:"pod"`
}

func TestApplyGolden(t *testing.T) {
	creds := loadCredentials(t)
	for _, name := range []string{"basic", "sidecars", "narrowed", "overrides", "files", "pull-secrets", "conflicts", "temporary-aws", "temporary-gcp", "identity-federation"} {
		t.Run(name, func(t *testing.T) {
			pod := loadPod(t, filepath.Join("testdata", "pods", name+".yaml"))
			conflicts := apply(t, pod, creds)

			got, err := yaml.Marshal(golden{Conflicts: conflicts, Pod: pod})
			if err != nil {
				t.Fatal(err)
			}
			compareGolden(t, filepath.Join("testdata", "golden", name+".yaml"), got)
		})
	}
}

// TestApplyIdempotent checks mutate(mutate(x)) == mutate(x), conflicts included, for every
// golden case: the webhook is re-invoked and the Job controller's pods arrive pre-injected.
func TestApplyIdempotent(t *testing.T) {
	creds := loadCredentials(t)
	entries, err := os.ReadDir(filepath.Join("testdata", "pods"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Run(e.Name(), func(t *testing.T) {
			once := loadPod(t, filepath.Join("testdata", "pods", e.Name()))
			firstConflicts := apply(t, once, creds)
			twice := once.DeepCopy()
			secondConflicts := apply(t, twice, creds)
			if diff := cmp.Diff(once, twice); diff != "" {
				t.Errorf("a second Apply changed the pod (-once +twice):\n%s", diff)
			}
			if diff := cmp.Diff(firstConflicts, secondConflicts); diff != "" {
				t.Errorf("a second Apply reported other conflicts (-once +twice):\n%s", diff)
			}
		})
	}
}

// TestApplyNoSecretValues: mutate references Secret keys; a value never reaches the pod.
func TestApplyNoSecretValues(t *testing.T) {
	pod := loadPod(t, filepath.Join("testdata", "pods", "basic.yaml"))
	apply(t, pod, loadCredentials(t))
	for _, c := range pod.Spec.Containers {
		for _, e := range c.Env {
			if e.ValueFrom == nil && strings.Contains(e.Name, "KEY") {
				t.Errorf("container %s: %s is a literal; want a secretKeyRef", c.Name, e.Name)
			}
		}
	}
}

func TestAnnotationChangesWithContent(t *testing.T) {
	creds := loadCredentials(t)
	a := mutate.Annotation(resolve(t, creds, "wandb"))
	c := creds["wandb"].DeepCopy()
	c.Spec.SecretRef.Name = "other-secret"
	r, err := credential.Resolve(c)
	if err != nil {
		t.Fatal(err)
	}
	b := mutate.Annotation([]credential.Resolved{r})
	if a == b {
		t.Errorf("annotation %q did not change when the credential's Secret changed", a)
	}
	if !strings.HasPrefix(a, "wandb sha256:") {
		t.Errorf("annotation %q: want names then a hash", a)
	}
}

func apply(t *testing.T, pod *corev1.Pod, creds map[string]*v1alpha1.Credential) []mutate.Conflict {
	t.Helper()
	return review(t, pod, creds)
}

// review runs obj through what the review package does before and after policy: find the pod
// template, inherit the workload's labels, apply the credentials it requests — to a Pod, or to a
// copy of a workload's pod template, which only gets the labels. It returns the conflicts.
func review(t *testing.T, obj runtime.Object, creds map[string]*v1alpha1.Credential) []mutate.Conflict {
	t.Helper()
	_, _, conflicts := reviewRecorded(t, obj, creds)
	return conflicts
}

// reviewRecorded is review, returning also obj's pod template and what it held before
// credgate added to it (mutate.Record), for mutate.Patch.
func reviewRecorded(t *testing.T, obj runtime.Object, creds map[string]*v1alpha1.Credential) (workload.Template, mutate.Recorded, []mutate.Conflict) {
	t.Helper()
	tmpl, err := workload.PodTemplate(obj)
	if err != nil {
		t.Fatal(err)
	}
	labels := tmpl.Meta.Labels
	if !workload.IsPod(obj) {
		labels = maps.Clone(labels)
	}
	workload.InheritLabels(obj, tmpl)
	names, problems := workload.Requested(tmpl.Meta.Labels)
	if len(problems) > 0 {
		t.Fatal(problems)
	}
	targets, problem := workload.TargetContainers(tmpl)
	if problem != "" {
		t.Fatal(problem)
	}
	rec := mutate.Record(tmpl, labels)
	into := tmpl
	if !workload.IsPod(obj) {
		into = workload.Template{Meta: tmpl.Meta.DeepCopy(), Spec: tmpl.Spec.DeepCopy(), Path: tmpl.Path}
	}
	return tmpl, rec, mutate.Apply(into, resolve(t, creds, names...), targets)
}

func resolve(t *testing.T, creds map[string]*v1alpha1.Credential, names ...string) []credential.Resolved {
	t.Helper()
	out := make([]credential.Resolved, 0, len(names))
	for _, n := range names {
		c, ok := creds[n]
		if !ok {
			t.Fatalf("no credential %s in testdata/credentials.yaml", n)
		}
		r, err := credential.Resolve(c)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func loadCredentials(t *testing.T) map[string]*v1alpha1.Credential {
	t.Helper()
	return loadCredentialsTB(t)
}

func loadCredentialsTB(t testing.TB) map[string]*v1alpha1.Credential {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "credentials.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*v1alpha1.Credential{}
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		c := &v1alpha1.Credential{}
		if err := yaml.UnmarshalStrict(doc, c); err != nil {
			t.Fatal(err)
		}
		out[c.Name] = c
	}
	return out
}

func loadPod(t *testing.T, path string) *corev1.Pod {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{}
	if err := yaml.UnmarshalStrict(data, pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

// compareGolden compares got with the golden file at path, which -update rewrites first.
func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run make golden to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", path, diff)
	}
}
