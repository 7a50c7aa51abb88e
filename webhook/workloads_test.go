package webhook

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
)

// customRequest is an AdmissionReview of the custom workload doc (YAML), created by a user.
func customRequest(t *testing.T, doc string) []byte {
	t.Helper()
	obj, err := yaml.YAMLToJSON([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	var meta metav1.TypeMeta
	if err := json.Unmarshal(obj, &meta); err != nil {
		t.Fatal(err)
	}
	gvk := meta.GroupVersionKind()
	k := kindNamed(t, gvk.Kind)
	return editRequest(t, readFixture(t, "job-labelled.json"), func(req map[string]any) {
		kind := map[string]any{"group": gvk.Group, "version": gvk.Version, "kind": gvk.Kind}
		res := map[string]any{"group": gvk.Group, "version": gvk.Version, "resource": k.Workload.Resource}
		req["kind"], req["requestKind"], req["resource"], req["requestResource"] = kind, kind, res, res
		var o any
		if err := json.Unmarshal(obj, &o); err != nil {
			t.Fatal(err)
		}
		req["object"] = o
	})
}

// withAdmin is the test store with an admin-scoped Credential, aws-admin.
func withAdmin() *credential.StaticStore {
	admin := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "aws-admin", Namespace: testNamespace},
		Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeAWS, SecretRef: &v1alpha1.SecretReference{Name: "aws-admin-secret"},
			AWS: &v1alpha1.AWS{Region: "eu-west-1"}, Access: v1alpha1.Access{Level: v1alpha1.AccessAdmin}},
		Status: testCredentials()[0].Status}
	return credential.NewStaticStore(testNamespace, stored(append(testCredentials(), admin))...)
}

// TestCustomWorkloads: a PyTorchJob and a RayJob are decided at submission on each of their pod
// templates, as the pods each will run: the object's credential label reaches every template
// (a template's own "false" wins, a RayJob's submitter inherits none), and a template that asks
// for what policy refuses refuses the object, the refusal naming the template.
func TestCustomWorkloads(t *testing.T) {
	for _, tt := range []struct {
		name, doc string
		denied    []string // what the refusal says; nil: admitted
		labels    map[string]map[string]string
	}{
		{name: "PyTorchJob admitted", doc: `
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata: {name: train, namespace: ml-team, labels: {credentials.credgate.dev/wandb: "true"}}
spec:
  pytorchReplicaSpecs:
    Master: {replicas: 1, template: {spec: {containers: [{name: pytorch, image: trainer}]}}}
    Worker:
      replicas: 3
      template:
        metadata: {labels: {credentials.credgate.dev/hf: "true", app: train}}
        spec: {containers: [{name: pytorch, image: trainer}]}
`, labels: map[string]map[string]string{
			"/spec/pytorchReplicaSpecs/Master/template": {"credentials.credgate.dev/wandb": "true"},
			"/spec/pytorchReplicaSpecs/Worker/template": {"credentials.credgate.dev/wandb": "true", "credentials.credgate.dev/hf": "true", "app": "train"},
		}},
		{name: "PyTorchJob Worker admin", doc: `
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata: {name: train, namespace: ml-team}
spec:
  pytorchReplicaSpecs:
    Master: {template: {metadata: {labels: {credentials.credgate.dev/wandb: "true"}}, spec: {containers: [{name: pytorch, image: trainer}]}}}
    Worker: {template: {metadata: {labels: {credentials.credgate.dev/aws-admin: "true"}}, spec: {containers: [{name: pytorch, image: trainer}]}}}
`, denied: []string{"credgate refused the PyTorchJob", "[admin-scoped-credential] replica type Worker: "}},
		{name: "RayJob", doc: `
apiVersion: ray.io/v1
kind: RayJob
metadata: {name: tune, namespace: ml-team, labels: {credentials.credgate.dev/wandb: "true"}}
spec:
  rayClusterSpec:
    headGroupSpec: {template: {spec: {containers: [{name: ray-head, image: ray}]}}}
    workerGroupSpecs:
      - {groupName: gpu, template: {metadata: {labels: {credentials.credgate.dev/wandb: "false"}}, spec: {containers: [{name: w, image: ray}]}}}
  submitterPodTemplate: {spec: {containers: [{name: submit, image: ray}]}}
`, labels: map[string]map[string]string{
			"/spec/rayClusterSpec/headGroupSpec/template":      {"credentials.credgate.dev/wandb": "true"},
			"/spec/rayClusterSpec/workerGroupSpecs/0/template": {"credentials.credgate.dev/wandb": "false"},
			"/spec/submitterPodTemplate":                       nil,
		}},
		{name: "RayCluster unknown credential", doc: `
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: tune, namespace: ml-team}
spec:
  headGroupSpec: {template: {spec: {containers: [{name: ray-head, image: ray}]}}}
  workerGroupSpecs:
    - {groupName: gpu, template: {metadata: {labels: {credentials.credgate.dev/openai: "true"}}, spec: {containers: [{name: w, image: ray}]}}}
`, denied: []string{"credgate refused the RayCluster", "[unknown-credential] worker group gpu: "}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := customRequest(t, tt.doc)
			kind := requestOf(t, body).Kind.Kind
			resp, _ := serve(t, newWebhook(t, newHandler(t, kind, newReviewer(t, withAdmin())), logr.Discard()), body)
			if tt.denied != nil {
				if resp.Allowed {
					t.Fatal("admitted, want refused")
				}
				for _, s := range tt.denied {
					if !strings.Contains(resp.Result.Message, s) {
						t.Errorf("refusal %q does not say %q", resp.Result.Message, s)
					}
				}
				return
			}
			if !resp.Allowed {
				t.Fatalf("refused: %s", resp.Result.Message)
			}
			patched, err := applyPatch(requestOf(t, body).Object.Raw, resp)
			if err != nil {
				t.Fatal(err)
			}
			var obj map[string]any
			if err := json.Unmarshal(patched, &obj); err != nil {
				t.Fatal(err)
			}
			for path, want := range tt.labels {
				var at any = obj
				for _, p := range strings.Split(strings.TrimPrefix(path, "/"), "/") {
					switch v := at.(type) {
					case map[string]any:
						at = v[p]
					case []any:
						at = v[0]
					}
				}
				var got map[string]string
				if m, ok := at.(map[string]any)["metadata"].(map[string]any); ok {
					data, _ := json.Marshal(m["labels"])
					_ = json.Unmarshal(data, &got)
				}
				if len(got) != len(want) {
					t.Errorf("%s labels %v, want %v", path, got, want)
				}
				for k, v := range want {
					if got[k] != v {
						t.Errorf("%s label %s = %q, want %q", path, k, got[k], v)
					}
				}
			}
		})
	}
}

// TestCustomWorkloadRedacted: a policy deciding one pod template of a workload sees them all
// (input.object), so a careless one may quote a value another template sets: it is hidden all
// the same — in the refusal, and so in the audit record and the Event.
func TestCustomWorkloadRedacted(t *testing.T) {
	const secret = "AKIASECRETVALUE12345"
	rev := withUserPolicy(t, "user/keys.rego", `package credgate.admission

deny contains {"rule": "plaintext-aws-key", "message": sprintf("a plaintext AWS key %s", [v])} if {
	walk(input.object, [_, v])
	is_string(v)
	startswith(v, "AKIA")
}
`)
	body := customRequest(t, `
apiVersion: ray.io/v1
kind: RayCluster
metadata: {name: tune, namespace: ml-team}
spec:
  headGroupSpec: {template: {spec: {containers: [{name: ray-head, image: ray, env: [{name: K, value: `+secret+`}]}]}}}
  workerGroupSpecs:
    - {groupName: g, template: {metadata: {labels: {credentials.credgate.dev/hf: "true"}}, spec: {containers: [{name: w, image: ray}]}}}
`)
	resp, _ := serve(t, newWebhook(t, newHandler(t, "RayCluster", reviewerFor(rev, testStore())), logr.Discard()), body)
	if resp.Allowed {
		t.Fatal("admitted, want refused by the user policy")
	}
	if msg := resp.Result.Message; strings.Contains(msg, secret) || !strings.Contains(msg, "worker group g: a plaintext AWS key [redacted]") {
		t.Errorf("refusal %q: want the head template's value redacted in the worker group's refusal", msg)
	}
}
