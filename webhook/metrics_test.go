package webhook

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/credgate/credgate/policies"
)

// TestAdmissionMetrics: every answer is counted by decision, refusals by rule, injections by
// credential type, and admissions and policy evaluations are timed.
func TestAdmissionMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := policies.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	r := newReviewer(t, testStore())
	r.Policy.(*policies.Engine).Metrics = pm
	mut := newHandler(t, "Pod", r)
	mut.Metrics = m
	h := newWebhook(t, mut, newLogger(&logBuffer{}))
	for _, f := range []string{"pod-training.json", "pod-unknown-credential.json", "pod-unknown-credential.json",
		"pod-unlabelled.json", "pod-no-containers.json"} {
		serve(t, h, readFixture(t, f))
	}
	counts := map[string]float64{
		"patched": testutil.ToFloat64(m.requests.WithLabelValues("/mutate-v1-pod", "create", decisionPatched)),
		"denied":  testutil.ToFloat64(m.requests.WithLabelValues("/mutate-v1-pod", "create", decisionDenied)),
		"allowed": testutil.ToFloat64(m.requests.WithLabelValues("/mutate-v1-pod", "create", decisionAllowed)),
		"invalid": testutil.ToFloat64(m.requests.WithLabelValues("/mutate-v1-pod", "create", decisionInvalid)),
		"unknown": testutil.ToFloat64(m.denials.WithLabelValues("unknown-credential")),
		"aws":     testutil.ToFloat64(m.injections.WithLabelValues("aws")),
	}
	want := map[string]float64{"patched": 1, "denied": 2, "allowed": 1, "invalid": 1, "unknown": 2, "aws": 1}
	for k, v := range want {
		if counts[k] != v {
			t.Errorf("%s = %v, want %v", k, counts[k], v)
		}
	}
	if n := testutil.CollectAndCount(m.duration); n != 1 {
		t.Errorf("%d duration series, want 1", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "credgate_policy_evaluation_duration_seconds" {
			if c := mf.GetMetric()[0].GetHistogram().GetSampleCount(); c != 3 {
				t.Errorf("%d policy evaluations timed, want 3 (the labelled pods)", c)
			}
			return
		}
	}
	t.Error("credgate_policy_evaluation_duration_seconds not gathered")
}
