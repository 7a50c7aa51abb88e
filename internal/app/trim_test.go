package app

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/credgate/credgate/api/v1alpha1"
)

// TestInformersKeepWhatAdmissionReads: the Credential informer drops kubectl's copy of the
// object and the managed fields, and keeps the rest; the Namespace informer keeps the name,
// identity and labels only.
func TestInformersKeepWhatAdmissionReads(t *testing.T) {
	c := &v1alpha1.Credential{
		ObjectMeta: metav1.ObjectMeta{Name: "wandb", Namespace: "ml-team",
			Annotations:   map[string]string{lastApplied: `{"spec":"a copy"}`, "team": "nlp"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl"}}},
		Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeWandB, SecretRef: &v1alpha1.SecretReference{Name: "wandb-secret"}},
	}
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

// TestProfiling: --profiling-bind-address serves Go's profiles there, until the manager stops.
func TestProfiling(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- profiling(addr)(ctx) }()
	var body string
	_ = wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 2*time.Second, true, func(context.Context) (bool, error) {
		resp, err := http.Get("http://" + addr + "/debug/pprof/heap?debug=1")
		if err != nil {
			return false, nil
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return resp.StatusCode == http.StatusOK, nil
	})
	if !strings.Contains(body, "heap profile") {
		t.Errorf("GET /debug/pprof/heap: %.100s", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("the profiling server ended with %v", err)
	}
}
