package webhook

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credgate/credgate/api/v1alpha1"
)

// TestInformersKeepWhatAdmissionReads: the Credential informer drops kubectl's copy of the
// object and the managed fields, and keeps the rest; the Namespace informer keeps the name,
// identity and labels only.
func TestInformersKeepWhatAdmissionReads(t *testing.T) {
	c := testCredentials()[0]
	c.Annotations = map[string]string{lastApplied: `{"spec":"a copy"}`, "team": "nlp"}
	c.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}
	shared := c.Annotations
	out, err := trimCredential(c)
	if err != nil {
		t.Fatal(err)
	}
	got := out.(*v1alpha1.Credential)
	if _, ok := got.Annotations[lastApplied]; ok || got.ManagedFields != nil || got.Annotations["team"] != "nlp" || got.Spec.Type != c.Spec.Type {
		t.Errorf("trimmed Credential: annotations %v, managed fields %v", got.Annotations, got.ManagedFields)
	}
	if _, ok := shared[lastApplied]; !ok {
		t.Error("the trim changed the annotations map it was given")
	}

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ml-team", UID: "u", ResourceVersion: "7",
		Labels: map[string]string{"credgate.dev/require-temporary": "true"}, Annotations: map[string]string{lastApplied: "{}"}},
		Spec: corev1.NamespaceSpec{Finalizers: []corev1.FinalizerName{"kubernetes"}}}
	out, err = trimNamespace(ns)
	if err != nil {
		t.Fatal(err)
	}
	gotNs := out.(*corev1.Namespace)
	want := metav1.ObjectMeta{Name: "ml-team", UID: "u", ResourceVersion: "7", Labels: ns.Labels}
	if gotNs.Name != want.Name || gotNs.UID != want.UID || gotNs.ResourceVersion != want.ResourceVersion ||
		gotNs.Labels["credgate.dev/require-temporary"] != "true" || gotNs.Annotations != nil || len(gotNs.Spec.Finalizers) != 0 {
		t.Errorf("trimmed Namespace = %+v", gotNs)
	}
}

// TestProfiling: --profiling serves Go's profiles, and nothing is served without it.
func TestProfiling(t *testing.T) {
	if profiling(false) != nil {
		t.Error("profiles served with profiling off")
	}
	h := profiling(true)["/debug/pprof/"]
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/debug/pprof/heap?debug=1", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "heap profile") {
		t.Errorf("GET /debug/pprof/heap: %d %.100s", rec.Code, rec.Body.String())
	}
}
