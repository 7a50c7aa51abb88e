//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/audit"
)

// The tests of this file run the real controllers of the workloads ML teams submit — the
// Kubeflow training operator (PyTorchJob) and KubeRay (RayJob → RayCluster → pods), built from
// their pinned modules with the CRDs those ship — beside the Job controller: credgate decides
// each workload at submission, on each of its pod templates, and injects into every pod the
// controllers create.

// workloadControllers starts KubeRay and the training operator, once, installing their CRDs.
// credgate serve started before: it said, once, that the cluster did not serve those kinds.
func workloadControllers(t *testing.T) {
	t.Helper()
	log, err := os.ReadFile(filepath.Join(c.WorkDir, "credgate.log"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "workload kinds not served by this cluster (their CRDs are absent), skipped until they are installed: PyTorchJob.kubeflow.org/v1, RayJob.ray.io/v1, RayCluster.ray.io/v1") {
		t.Error("credgate serve, started before the workload CRDs were installed, did not say it skipped their kinds")
	}
	if err := c.StartWorkloadControllers(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// object decodes a YAML manifest, with %s standing for the namespace.
func object(t *testing.T, ns, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(strings.ReplaceAll(doc, "%s", ns)), &u.Object); err != nil {
		t.Fatal(err)
	}
	return u
}

// podsOf waits until the pods labelled selector in ns number n, and returns them.
func podsOf(t *testing.T, ns string, selector map[string]string, n int, what string) []corev1.Pod {
	t.Helper()
	var pods corev1.PodList
	eventually(t, 90*time.Second, func() (bool, string) {
		if err := c.Client.List(t.Context(), &pods, client.InNamespace(ns), client.MatchingLabels(selector)); err != nil {
			return false, err.Error()
		}
		return len(pods.Items) >= n, fmt.Sprintf("%d pods of %s, want %d", len(pods.Items), what, n)
	})
	return pods.Items
}

// injected returns the names of the variables of a pod's first container.
func injected(p corev1.Pod) []string { return envNames(p.Spec.Containers[0].Env) }

// auditRecordOf returns the audit record of a refusal of a kind in ns whose name starts with
// name, failing if there is none.
func auditRecordOf(t *testing.T, ns, kind, name string) audit.Record {
	t.Helper()
	var found *audit.Record
	eventually(t, 10*time.Second, func() (bool, string) {
		recs, err := auditRecords()
		if err != nil {
			return false, err.Error()
		}
		for i := range recs {
			r := recs[i]
			if r.Namespace == ns && r.Kind == kind && strings.HasPrefix(r.Name, name) && r.Enforcement == "deny" {
				found = &r
				return true, ""
			}
		}
		return false, fmt.Sprintf("no audit record of the refused %s %s", kind, name)
	})
	return *found
}

const pytorchJobDoc = `
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata:
  name: train
  namespace: %s
  labels: {credentials.credgate.dev/wandb: "true"}
spec:
  pytorchReplicaSpecs:
    Master:
      replicas: 1
      restartPolicy: OnFailure
      template:
        spec: {containers: [{name: pytorch, image: "trainer:1"}]}
    Worker:
      replicas: 2
      restartPolicy: OnFailure
      template:
        metadata: {labels: {credentials.credgate.dev/hf: "true"}}
        spec: {containers: [{name: pytorch, image: "trainer:1"}]}
`

// TestPyTorchJob: a PyTorchJob labelled for W&B, its Worker replica type for Hugging Face too,
// is admitted with the label copied into both replica types' templates; the training operator
// creates its master and two workers, and each pod gets what its template asks for. A
// PyTorchJob whose Worker asks for an admin-scoped Credential is refused at submission,
// naming the replica type, and audited.
func TestPyTorchJob(t *testing.T) {
	workloadControllers(t)
	ns := namespace(t)
	credential(t, ns, "wandb", v1alpha1.TypeWandB, map[string]string{"api-key": "k"}, nil)
	credential(t, ns, "hf", v1alpha1.TypeHuggingFace, map[string]string{"token": "h"}, nil)
	credential(t, ns, "aws-admin", v1alpha1.TypeAWS, map[string]string{"aws_access_key_id": "AKIA", "aws_secret_access_key": "s"},
		func(s *v1alpha1.CredentialSpec) { s.Access.Level = v1alpha1.AccessAdmin })

	job := object(t, ns, pytorchJobDoc)
	if err := c.Client.Create(t.Context(), job); err != nil {
		t.Fatalf("create the PyTorchJob: %v", err)
	}
	for _, rt := range []string{"Master", "Worker"} {
		labels, _, _ := unstructured.NestedStringMap(job.Object, "spec", "pytorchReplicaSpecs", rt, "template", "metadata", "labels")
		if labels["credentials.credgate.dev/wandb"] != "true" {
			t.Errorf("the stored PyTorchJob's %s template has labels %v, want the PyTorchJob's credential label", rt, labels)
		}
	}
	pods := podsOf(t, ns, map[string]string{"training.kubeflow.org/job-name": "train"}, 3, "PyTorchJob train")
	for _, p := range pods {
		rt := p.Labels["training.kubeflow.org/replica-type"]
		env := injected(p)
		wantHF := strings.EqualFold(rt, "worker")
		if !slices.Contains(env, "WANDB_API_KEY") || slices.Contains(env, "HF_TOKEN") != wantHF {
			t.Errorf("pod %s (%s) has %v: want WANDB_API_KEY, and HF_TOKEN only in workers", p.Name, rt, env)
		}
		if ref := metav1.GetControllerOf(&p); ref == nil || ref.Kind != "PyTorchJob" || ref.Name != "train" {
			t.Errorf("pod %s is controlled by %v, not the PyTorchJob", p.Name, ref)
		}
	}

	bad := object(t, ns, strings.Replace(strings.Replace(pytorchJobDoc, "name: train", "name: escalate", 1),
		"credentials.credgate.dev/hf", "credentials.credgate.dev/aws-admin", 1))
	err := c.Client.Create(t.Context(), bad)
	if err == nil || !strings.Contains(err.Error(), "[admin-scoped-credential] replica type Worker: ") {
		t.Fatalf("a PyTorchJob whose Worker asks for an admin-scoped credential: %v, want refused naming the replica type", err)
	}
	rec := auditRecordOf(t, ns, "PyTorchJob", "escalate")
	if !slices.ContainsFunc(rec.Violations, func(v audit.Violation) bool {
		return v.Rule == "admin-scoped-credential" && v.Action == "deny" && strings.HasPrefix(v.Message, "replica type Worker: ")
	}) {
		t.Errorf("the audit record of the refused PyTorchJob: %+v", rec.Violations)
	}
	t.Logf("PyTorchJob: %d pods created by the training operator, each with its credentials; the escalating PyTorchJob refused at submission: %v", len(pods), err)
}

const rayJobDoc = `
apiVersion: ray.io/v1
kind: RayJob
metadata:
  name: tune
  namespace: %s
  labels: {credentials.credgate.dev/wandb: "true"}
spec:
  entrypoint: python -c "print(1)"
  shutdownAfterJobFinishes: false
  rayClusterSpec:
    headGroupSpec:
      rayStartParams: {}
      template:
        spec: {containers: [{name: ray-head, image: "rayproject/ray:2.9.0"}]}
    workerGroupSpecs:
      - groupName: gpu
        replicas: 1
        minReplicas: 0
        maxReplicas: 4
        rayStartParams: {}
        template:
          metadata: {labels: {credentials.credgate.dev/hf: "true"}}
          spec: {containers: [{name: ray-worker, image: "rayproject/ray:2.9.0"}]}
`

// TestRayJob: a RayJob labelled for W&B, its worker group for Hugging Face too, is admitted
// with the label copied into its head and worker templates; KubeRay creates a RayCluster
// (admitted too) and its pods, each with what its template asks for. Then, the worker group's
// Credential deleted, a worker scaled up is refused, and its audit record names the whole
// owner chain: the pod, its RayCluster, and the RayJob above it.
func TestRayJob(t *testing.T) {
	workloadControllers(t)
	ns := namespace(t)
	credential(t, ns, "wandb", v1alpha1.TypeWandB, map[string]string{"api-key": "k"}, nil)
	credential(t, ns, "hf", v1alpha1.TypeHuggingFace, map[string]string{"token": "h"}, nil)

	job := object(t, ns, rayJobDoc)
	if err := c.Client.Create(t.Context(), job); err != nil {
		t.Fatalf("create the RayJob: %v", err)
	}
	var cluster unstructured.Unstructured
	eventually(t, 90*time.Second, func() (bool, string) {
		list := &unstructured.UnstructuredList{}
		list.SetAPIVersion("ray.io/v1")
		list.SetKind("RayClusterList")
		if err := c.Client.List(t.Context(), list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		if len(list.Items) == 0 {
			return false, "KubeRay created no RayCluster for the RayJob"
		}
		cluster = list.Items[0]
		return true, ""
	})
	if ref := metav1.GetControllerOf(&cluster); ref == nil || ref.Kind != "RayJob" || ref.Name != "tune" {
		t.Errorf("RayCluster %s is controlled by %v, not the RayJob", cluster.GetName(), ref)
	}
	pods := podsOf(t, ns, map[string]string{"ray.io/cluster": cluster.GetName()}, 2, "RayCluster "+cluster.GetName())
	for _, p := range pods {
		env := injected(p)
		worker := p.Labels["ray.io/node-type"] == "worker"
		if !slices.Contains(env, "WANDB_API_KEY") || slices.Contains(env, "HF_TOKEN") != worker {
			t.Errorf("pod %s (%s) has %v: want WANDB_API_KEY, and HF_TOKEN only in the worker", p.Name, p.Labels["ray.io/node-type"], env)
		}
	}

	// The worker group's Credential gone, the next worker is refused when KubeRay creates it.
	if err := c.Client.Delete(t.Context(), &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hf"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() (bool, string) {
		var live unstructured.Unstructured
		live.SetAPIVersion("ray.io/v1")
		live.SetKind("RayCluster")
		if err := c.Client.Get(t.Context(), client.ObjectKeyFromObject(&cluster), &live); err != nil {
			return false, err.Error()
		}
		groups, _, _ := unstructured.NestedSlice(live.Object, "spec", "workerGroupSpecs")
		groups[0].(map[string]any)["replicas"] = int64(2)
		if err := unstructured.SetNestedSlice(live.Object, groups, "spec", "workerGroupSpecs"); err != nil {
			return false, err.Error()
		}
		err := c.Client.Update(t.Context(), &live)
		return err == nil, fmt.Sprintf("scale the worker group: %v", err)
	})
	rec := auditRecordOf(t, ns, "Pod", cluster.GetName()+"-gpu-worker-")
	if rec.Owner == nil || rec.Owner.Kind != "RayCluster" || rec.Owner.Name != cluster.GetName() ||
		rec.Owner.Owner == nil || rec.Owner.Owner.Kind != "RayJob" || rec.Owner.Owner.Name != "tune" {
		t.Errorf("the refused worker's audit record names the owners %+v, want RayCluster %s under RayJob tune", rec.Owner, cluster.GetName())
	}
	if !slices.ContainsFunc(rec.Violations, func(v audit.Violation) bool { return v.Rule == "unknown-credential" }) {
		t.Errorf("the refused worker's violations: %+v", rec.Violations)
	}
	t.Logf("RayJob: RayCluster %s and %d pods created by KubeRay, each with its credentials; a worker without its Credential refused (%s), audited with its owners",
		cluster.GetName(), len(pods), rec.Name)
}
