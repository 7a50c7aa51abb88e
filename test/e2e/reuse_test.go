//go:build e2e

package e2e

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
)

// TestIdenticalPodsReuseTheDecision: two pods created from the same object, with a name still
// to be generated — as a Job's controller creates its pods — a second and more apart, reach
// credgate serve through the real API server as admissions that differ in the time the API
// server stamps in their managed fields alone. No built-in policy reads managed fields, so the
// second reuses the first's decision (credgate_admission_reused_total moves) and is injected
// the same. A pair may miss when something the decision read changed between its two pods (the
// Credential's status, written just after it was created, or a restart of credgate by an
// earlier test): the test tries a few pairs. Without the key that leaves managed fields out, no
// pair a second apart can reuse.
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
			if i > 0 {
				time.Sleep(1100 * time.Millisecond) // into another second
			}
			created[i] = template.DeepCopy()
			if err := c.Client.Create(t.Context(), created[i], client.DryRunAll); err != nil {
				t.Fatal(err)
			}
		}
		if metricSum(t, "credgate_admission_reused_total{") == before {
			continue
		}
		checkReusedPair(t, created)
		return
	}
	t.Fatal("no pair of pods a second apart reused a decision: managed fields are in the key, or reuse is not wired into credgate serve")
}

// checkReusedPair checks two pods of one object, the second of which reused the first's
// decision: their managed fields carry different seconds, and both were injected the same.
func checkReusedPair(t *testing.T, created [2]*corev1.Pod) {
	t.Helper()
	times := func(p *corev1.Pod) []metav1.Time {
		var ts []metav1.Time
		for _, m := range p.ManagedFields {
			if m.Time != nil {
				ts = append(ts, *m.Time)
			}
		}
		return ts
	}
	if a, b := times(created[0]), times(created[1]); len(a) == 0 || len(b) == 0 || a[0].Equal(&b[0]) {
		t.Errorf("the pods' managed fields carry times %v and %v: want one each, in different seconds", a, b)
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
}
