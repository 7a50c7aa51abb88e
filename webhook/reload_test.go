package webhook_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/certs"
	"github.com/credgate/credgate/credential"
	"github.com/credgate/credgate/policies"
	"github.com/credgate/credgate/review"
	"github.com/credgate/credgate/webhook"
)

// server is credgate's webhook server running over TLS on 127.0.0.1, as the API server
// reaches it, with a policy directory watched for changes.
type server struct {
	url     string
	client  *http.Client
	engine  *policies.Engine
	reg     *prometheus.Registry
	watcher *policies.Watcher
}

func startServer(t *testing.T, policyDir string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)

	certDir := t.TempDir()
	b, err := certs.Generate(certs.Options{Hosts: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Write(certDir); err != nil {
		t.Fatal(err)
	}
	rev, err := policies.Load(ctx, policyDir)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{engine: policies.NewEngine(rev), reg: prometheus.NewRegistry()}
	metrics, err := policies.NewMetrics(s.reg)
	if err != nil {
		t.Fatal(err)
	}
	s.watcher = &policies.Watcher{Dir: policyDir, Interval: 20 * time.Millisecond, Engine: s.engine, Metrics: metrics, Log: logr.Discard()}
	go func() { _ = s.watcher.Start(ctx) }()

	store := credential.NewStaticStore("team-a", &v1alpha1.Credential{
		ObjectMeta: metav1.ObjectMeta{Name: "wandb", Namespace: "team-a"},
		Spec:       v1alpha1.CredentialSpec{Type: v1alpha1.TypeWandB, SecretRef: &v1alpha1.SecretReference{Name: "wandb-secret"}},
	})
	port := freePort(t)
	srv := crwebhook.NewServer(crwebhook.Options{Host: "127.0.0.1", Port: port, CertDir: certDir})
	webhook.Handlers{Reviewer: &review.Reviewer{Store: store, Policy: s.engine}, Log: logr.Discard()}.Register(srv)
	go func() { _ = srv.Start(ctx) }()

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b.CACert)
	s.client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	s.url = fmt.Sprintf("https://127.0.0.1:%d", port)
	started := func(context.Context) (bool, error) { return srv.StartedChecker()(nil) == nil, nil }
	if err := wait.PollUntilContextTimeout(ctx, 10*time.Millisecond, 5*time.Second, true, started); err != nil {
		t.Fatal("webhook server did not start")
	}
	return s
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// admit sends a labelled pod to path and returns the response.
func (s *server) admit(t *testing.T, path string, env string) *admissionv1.AdmissionResponse {
	t.Helper()
	pod := fmt.Sprintf(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"train","namespace":"team-a",
		"labels":{"credentials.credgate.dev/wandb":"true"}},"spec":{"containers":[{"name":"trainer","image":"t:1","env":[%s]}]}}`, env)
	review := fmt.Sprintf(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1",
		"kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},
		"namespace":"team-a","operation":"CREATE","userInfo":{"username":"alice"},"object":%s}}`, pod)
	resp, err := s.client.Post(s.url+path, "application/json", bytes.NewBufferString(review))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out.Response
}

func (s *server) reloadErrors(t *testing.T) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "credgate_policy_reload_errors_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

// eventually polls cond every 20ms, for at most 10s (the watcher polls every 20ms).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := wait.PollUntilContextTimeout(context.Background(), 20*time.Millisecond, 10*time.Second, true,
		func(context.Context) (bool, error) { return cond(), nil }); err != nil {
		t.Fatalf("gave up waiting: %s", what)
	}
}

// writeAtomically writes a file the watcher never reads half written, as a ConfigMap's volume
// is updated: a watcher tick that read part of a broken file would count a second error.
func writeAtomically(path, text string) error {
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

const userPolicy = `package credgate.admission

deny contains {"rule": "no-wandb-in-team-a", "credential": "wandb", "message": "W&B is not allowed in team-a"} if {
	input.request.namespace == "team-a"
	some c in input.credentials
	c.name == "wandb"
}
`

func TestServerReloadsPolicies(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	first := s.engine.Current().ID()

	if r := s.admit(t, "/mutate-v1-pod", ""); !r.Allowed || len(r.Patch) == 0 {
		t.Fatalf("before any user policy: allowed=%v patch=%d bytes, want an allowed patch; %v", r.Allowed, len(r.Patch), r.Result)
	}

	// A new policy file is picked up without a restart.
	if err := writeAtomically(filepath.Join(dir, "team-a.rego"), userPolicy); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the new policy to refuse the pod", func() bool {
		r := s.admit(t, "/mutate-v1-pod", "")
		return !r.Allowed && strings.Contains(r.Result.Message, "[no-wandb-in-team-a] W&B is not allowed in team-a")
	})
	second := s.engine.Current().ID()
	if second == first {
		t.Fatalf("revision did not change: %s", second)
	}

	// A broken policy never replaces the revision serving: it is counted, and the previous
	// revision keeps refusing.
	if err := writeAtomically(filepath.Join(dir, "broken.rego"), "package credgate.admission\n\ndeny contains x if {\n"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the broken policy to be counted", func() bool { return s.reloadErrors(t) >= 1 })
	if got := s.engine.Current().ID(); got != second {
		t.Errorf("serving revision %s after a broken policy, want the previous %s", got, second)
	}
	if r := s.admit(t, "/mutate-v1-pod", ""); r.Allowed || !strings.Contains(r.Result.Message, "no-wandb-in-team-a") {
		t.Errorf("after a broken policy: allowed=%v %v; want the previous revision's refusal", r.Allowed, r.Result)
	}
	time.Sleep(100 * time.Millisecond) // several more watcher ticks
	if got := s.reloadErrors(t); got != 1 {
		t.Errorf("reload errors = %v, want 1: an unchanged broken policy is reported once", got)
	}

	// Fixing it serves again.
	if err := os.Remove(filepath.Join(dir, "broken.rego")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "team-a.rego")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the policy's removal to admit the pod", func() bool { return s.admit(t, "/mutate-v1-pod", "").Allowed })
	if got := s.engine.Current().ID(); got != first {
		t.Errorf("revision after removing the user policies = %s, want the first %s", got, first)
	}
}

// TestValidatingWebhook: the validating endpoint refuses what the mutating one would, and
// admits without a patch or warnings.
func TestValidatingWebhook(t *testing.T) {
	s := startServer(t, t.TempDir())
	conflict := `{"name":"WANDB_API_KEY","value":"mine"}`
	if r := s.admit(t, "/validate-v1-pod", conflict); r.Allowed || !strings.Contains(r.Result.Message, "[conflicting-env]") {
		t.Errorf("conflicting pod: allowed=%v %v, want a conflicting-env refusal", r.Allowed, r.Result)
	}
	r := s.admit(t, "/validate-v1-pod", "")
	if !r.Allowed || len(r.Patch) != 0 || len(r.Warnings) != 0 {
		t.Errorf("clean pod: allowed=%v patch=%s warnings=%v, want allowed, no patch, no warnings", r.Allowed, r.Patch, r.Warnings)
	}
}
