package workload_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/credgate/credgate/workload"
)

func custom(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

const pytorchJob = `
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata:
  name: train
  labels: {credentials.credgate.dev/wandb: "true", team: nlp}
spec:
  pytorchReplicaSpecs:
    Worker:
      replicas: 3
      template:
        metadata: {labels: {credentials.credgate.dev/hf: "true", credentials.credgate.dev/wandb: "false"}}
        spec: {containers: [{name: pytorch, image: trainer}]}
    Master:
      replicas: 1
      template:
        spec: {containers: [{name: pytorch, image: trainer}]}
`

const rayJob = `
apiVersion: ray.io/v1
kind: RayJob
metadata:
  name: tune
  labels: {credentials.credgate.dev/wandb: "true"}
spec:
  entrypoint: python tune.py
  rayClusterSpec:
    headGroupSpec:
      template:
        spec: {containers: [{name: ray-head, image: ray}]}
    workerGroupSpecs:
      - groupName: gpu
        template:
          spec: {containers: [{name: ray-worker, image: ray}]}
      - template:
          metadata: {labels: {credentials.credgate.dev/s3: "true"}}
          spec: {containers: [{name: ray-worker, image: ray}]}
  submitterPodTemplate:
    spec: {containers: [{name: submit, image: ray}]}
`

// TestCustomTemplates: a custom kind's pod templates are found at its Kind's paths — each map
// member (sorted) and list item — named for messages, and each inherits the object's
// credential labels unless it is its own (a RayJob's submitter); a template's own value wins.
func TestCustomTemplates(t *testing.T) {
	type got struct {
		Name, Path string
		Labels     map[string]string
	}
	for _, tt := range []struct {
		name, doc string
		want      []got
	}{
		{"PyTorchJob", pytorchJob, []got{
			{"replica type Master", "spec.pytorchReplicaSpecs.Master.template", map[string]string{"credentials.credgate.dev/wandb": "true"}},
			{"replica type Worker", "spec.pytorchReplicaSpecs.Worker.template", map[string]string{"credentials.credgate.dev/hf": "true", "credentials.credgate.dev/wandb": "false"}},
		}},
		{"RayJob", rayJob, []got{
			{"head group", "spec.rayClusterSpec.headGroupSpec.template", map[string]string{"credentials.credgate.dev/wandb": "true"}},
			{"worker group gpu", "spec.rayClusterSpec.workerGroupSpecs.0.template", map[string]string{"credentials.credgate.dev/wandb": "true"}},
			{"worker group 1", "spec.rayClusterSpec.workerGroupSpecs.1.template", map[string]string{"credentials.credgate.dev/s3": "true", "credentials.credgate.dev/wandb": "true"}},
			{"submitter", "spec.submitterPodTemplate", nil},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			obj := custom(t, tt.doc)
			ts, err := workload.PodTemplates(obj)
			if err != nil {
				t.Fatal(err)
			}
			var out []got
			for _, tmpl := range ts {
				workload.InheritLabels(obj, tmpl)
				out = append(out, got{tmpl.Name, strings.Join(tmpl.Path, "."), tmpl.Meta.Labels})
			}
			if diff := cmp.Diff(tt.want, out); diff != "" {
				t.Errorf("templates (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCustomTemplatesMalformed: what is not a pod template where one should be is malformed,
// with where it is; so is a custom workload with no template, or more than MaxTemplates.
func TestCustomTemplatesMalformed(t *testing.T) {
	many := "apiVersion: ray.io/v1\nkind: RayCluster\nspec:\n  workerGroupSpecs:\n"
	for i := range workload.MaxTemplates + 1 {
		many += fmt.Sprintf("    - {groupName: g%d, template: {spec: {containers: [{name: c}]}}}\n", i)
	}
	for name, tt := range map[string]struct{ doc, want string }{
		"replica specs a list":  {"apiVersion: kubeflow.org/v1\nkind: PyTorchJob\nspec: {pytorchReplicaSpecs: [a]}", "spec.pytorchReplicaSpecs is not a map"},
		"template a string":     {"apiVersion: kubeflow.org/v1\nkind: PyTorchJob\nspec: {pytorchReplicaSpecs: {Worker: {template: x}}}", "spec.pytorchReplicaSpecs.Worker.template is not a pod template"},
		"containers not a list": {"apiVersion: kubeflow.org/v1\nkind: PyTorchJob\nspec: {pytorchReplicaSpecs: {Worker: {template: {spec: {containers: 1}}}}}", "spec.pytorchReplicaSpecs.Worker.template"},
		"no template":           {"apiVersion: kubeflow.org/v1\nkind: PyTorchJob\nspec: {}", "the PyTorchJob has no pod template"},
		"no containers":         {"apiVersion: ray.io/v1\nkind: RayCluster\nspec: {headGroupSpec: {template: {spec: {}}}}", "head group: the pod has no containers"},
		"worker groups a map":   {"apiVersion: ray.io/v1\nkind: RayCluster\nspec: {workerGroupSpecs: {a: b}}", "spec.workerGroupSpecs is not a list"},
		"too many":              {many, "more than 64 pod templates"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := workload.PodTemplates(custom(t, tt.doc))
			if !errors.Is(err, workload.ErrMalformed) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want malformed: %s", err, tt.want)
			}
		})
	}
	if _, err := workload.PodTemplates(custom(t, "apiVersion: example.com/v1\nkind: Trainer\nspec: {}")); !errors.Is(err, workload.ErrUnsupportedKind) {
		t.Errorf("a kind credgate does not know: %v", err)
	}
}

// TestKindsAgree: each built-in kind's template sits where its Kind says — the switch of
// PodTemplates and the paths the webhook configurations are generated from are one — and every
// kind is described for docs/workloads.md.
func TestKindsAgree(t *testing.T) {
	for i := range workload.Kinds {
		k := &workload.Kinds[i]
		if k.Resource == "" || k.LabelFlow == "" || k.Controller == "" {
			t.Errorf("%s: Resource, LabelFlow and Controller must be set", k.GVK)
		}
		if workload.KindOf(k.GVK) != k {
			t.Errorf("KindOf(%s) is another entry", k.GVK)
		}
		if k.Custom() || k.IsPod() {
			continue
		}
		// A container where the Kind says the template is, decoded into the Go type.
		var doc any = map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "c"}}}}
		for _, p := range slices.Backward(k.Templates[0].Path) {
			doc = map[string]any{p: doc}
		}
		data, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		obj := k.New()
		if err := json.Unmarshal(data, obj); err != nil {
			t.Fatal(err)
		}
		ts, err := workload.PodTemplates(obj)
		if err != nil {
			t.Errorf("%s: %v", k.GVK.Kind, err)
			continue
		}
		if len(ts) != 1 || !slices.Equal(ts[0].Path, k.Templates[0].Path) {
			t.Errorf("%s: the template found at %v, its Kind says %v", k.GVK.Kind, ts[0].Path, k.Templates[0].Path)
		}
	}
}

// TestTemplateNamesBounded: a map key or group name, written by the tenant, is cut and quoted in
// template names and messages: a 1 MiB key does not make a 1 MiB refusal.
func TestTemplateNamesBounded(t *testing.T) {
	pytorch := func(specs map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob",
			"spec": map[string]any{"pytorchReplicaSpecs": specs}}}
	}
	template := func(containers ...any) map[string]any {
		return map[string]any{"template": map[string]any{"spec": map[string]any{"containers": containers}}}
	}
	_, err := workload.PodTemplates(pytorch(map[string]any{strings.Repeat("k", 1<<20): template()}))
	if err == nil || len(err.Error()) > 200 {
		t.Errorf("error of %d bytes, want a short one: %.200v", len(fmt.Sprint(err)), err)
	}
	ts, err := workload.PodTemplates(pytorch(map[string]any{"a\x1b[31m": template(map[string]any{"name": "c"})}))
	if err != nil {
		t.Fatal(err)
	}
	if want := `replica type "a\x1b[31m"`; ts[0].Name != want {
		t.Errorf("name %q, want %q", ts[0].Name, want)
	}
}
