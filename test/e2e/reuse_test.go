//go:build e2e

package e2e

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
)

// TestIdenticalPodsReuseTheDecision: two pods created one after the other from the same
// object, with a name still to be generated — as a Job's controller creates its pods — reach
// credgate serve as the same admission through the real API server, and the second reuses the
// first's decision (credgate_admission_reused_total moves) and is injected the same. The API
// server's request carries managed fields stamped to the second, so a pair that straddles a
// second is two admissions; the test tries a few pairs.
func TestIdenticalPodsReuseTheDecision(t *testing.T) {
	ns := namespace(t)
	credential(t, ns, "wandb", v1alpha1.TypeWandB, map[string]string{"api-key": "k"}, nil)
	template := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "train-", Namespace: ns,
		Labels: map[string]string{"credentials.credgate.dev/wandb": "true"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "trainer", Image: "i:1"}}}}
	for range 5 {
		before := metricSum(t, "credgate_admission_reused_total{")
		var created [2]*corev1.Pod
		for i := range created {
			created[i] = template.DeepCopy()
			if err := c.Client.Create(t.Context(), created[i], client.DryRunAll); err != nil {
				t.Fatal(err)
			}
		}
		if metricSum(t, "credgate_admission_reused_total{") == before {
			continue
		}
		for i, p := range created {
			env := map[string]*corev1.EnvVarSource{}
			for _, e := range p.Spec.Containers[0].Env {
				env[e.Name] = e.ValueFrom
			}
			if src := env["WANDB_API_KEY"]; src == nil || src.SecretKeyRef == nil || src.SecretKeyRef.Name != "wandb-secret" {
				t.Errorf("pod %d: WANDB_API_KEY not injected from wandb-secret: %+v", i+1, p.Spec.Containers[0].Env)
			}
		}
		if a, b := created[0].Annotations["credgate.dev/injected"], created[1].Annotations["credgate.dev/injected"]; a == "" || a != b {
			t.Errorf("injected annotations %q and %q, want one and the same", a, b)
		}
		return
	}
	t.Fatal("no pair of identical pods reused a decision: the API server's requests differ, or reuse is not wired into credgate serve")
}
