package webhook

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/policies"
	"github.com/credgate/credgate/review"
)

// versionedStore is a credential.Store whose Credentials change as an informer's do: each
// update is a new object with the next resourceVersion.
type versionedStore struct {
	mu    sync.Mutex
	creds map[string]*v1alpha1.Credential
	rv    int
	gets  int
}

func newVersionedStore() *versionedStore {
	s := &versionedStore{creds: map[string]*v1alpha1.Credential{}}
	for _, c := range stored(testCredentials()) {
		if c.Namespace == testNamespace {
			s.creds[c.Name] = c
		}
	}
	return s
}

func (s *versionedStore) Get(_ context.Context, ns, name string) (*v1alpha1.Credential, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	if c, ok := s.creds[name]; ok && ns == testNamespace {
		return c, nil
	}
	return nil, apierrors.NewNotFound(v1alpha1.GroupVersion.WithResource("credentials").GroupResource(), name)
}

func (s *versionedStore) Names(context.Context, string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.creds)), nil
}

// update replaces the Credential name with a changed copy, at the next resourceVersion.
func (s *versionedStore) update(name string, change func(*v1alpha1.Credential)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.creds[name].DeepCopy()
	change(c)
	s.rv++
	c.ResourceVersion = "1" + strconv.Itoa(s.rv)
	s.creds[name] = c
}

func (s *versionedStore) delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.creds, name)
}

// lookups returns how many Gets the store answered so far.
func (s *versionedStore) lookups() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets
}

// mutableNamespaces are namespace labels a test changes.
type mutableNamespaces struct {
	mu     sync.Mutex
	labels map[string]string
}

func (n *mutableNamespaces) Labels(context.Context, string) (map[string]string, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return maps.Clone(n.labels), nil
}

func (n *mutableNamespaces) set(k, v string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.labels[k] = v
}

// reuseFixture is a mutating and a validating pod webhook sharing one Decisions, over a store,
// namespaces and an engine the test changes.
type reuseFixture struct {
	store      *versionedStore
	namespaces *mutableNamespaces
	engine     *policies.Engine
	decisions  *review.Decisions
	mutating   *Handler
	validating *Handler
}

func newReuseFixture(t *testing.T) *reuseFixture {
	t.Helper()
	rev, err := builtinPolicies()
	if err != nil {
		t.Fatal(err)
	}
	f := &reuseFixture{store: newVersionedStore(), namespaces: &mutableNamespaces{labels: map[string]string{"team": "nlp"}},
		engine: policies.NewEngine(rev), decisions: review.NewDecisions(8)}
	r := &review.Reviewer{Store: f.store, Namespaces: f.namespaces, Policy: f.engine, Values: &policies.ValueCache{}}
	f.mutating = newHandler(t, "Pod", r)
	f.mutating.Decisions = f.decisions
	f.validating = newHandler(t, "Pod", r)
	f.validating.ValidateOnly, f.validating.Decisions = true, f.decisions
	return f
}

// admit sends body to the mutating webhook and reports the response and whether it reused
// a decision (the review, which reads the object, did not run: no Credential was resolved
// and no policy evaluated beyond the checks of reuse itself).
func (f *reuseFixture) admit(t *testing.T, body []byte) (resp responseOf, reused bool) {
	t.Helper()
	before := f.decisions.Stats()
	r, _ := serve(t, newWebhook(t, f.mutating, logr.Discard()), body)
	return responseOf{allowed: r.Allowed, message: r.Result.Message, patch: string(r.Patch), warnings: strings.Join(r.Warnings, "\n")},
		f.decisions.Stats().Hits > before.Hits
}

type responseOf struct {
	allowed                  bool
	message, patch, warnings string
}

// TestReusedDecisionsAreNeverStale: an identical admission reuses the decision and patch of
// the first — and answers exactly as a review would — until any input of the decision changes:
// a Credential it resolved (its spec, its status, its removal), the namespace's labels, the
// policy revision, the clock passing a Credential's expiry; then it is reviewed afresh, and
// the answer follows the change. A request that differs in anything the policies see is
// another admission.
func TestReusedDecisionsAreNeverStale(t *testing.T) {
	body := readFixture(t, "pod-training.json")
	f := newReuseFixture(t)

	first, reused := f.admit(t, body)
	if reused || !first.allowed || first.patch == "" {
		t.Fatalf("first admission: reused=%t allowed=%t patch=%d bytes, want a fresh review that patches", reused, first.allowed, len(first.patch))
	}
	again, reused := f.admit(t, body)
	if !reused {
		t.Fatal("an identical admission did not reuse the decision")
	}
	if again != first {
		t.Fatalf("the reused answer differs from the review's:\n%+v\n%+v", again, first)
	}

	// Each change, then what the next identical admission must show: a fresh review whose
	// answer follows the change.
	steps := []struct {
		name   string
		change func()
		check  func(t *testing.T, r responseOf)
	}{
		{"a Credential's spec", func() {
			f.store.update("wandb", func(c *v1alpha1.Credential) { c.Spec.Env[0].Name = "WANDB_KEY_RENAMED" })
		}, func(t *testing.T, r responseOf) {
			if !strings.Contains(r.patch, "WANDB_KEY_RENAMED") {
				t.Errorf("the patch does not follow the renamed variable: %s", r.patch)
			}
		}},
		{"a Credential's status", func() {
			f.store.update("hf", func(c *v1alpha1.Credential) {
				c.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: "SecretMissing"}}
			})
		}, func(t *testing.T, r responseOf) {
			if r.allowed || !strings.Contains(r.message, "[credential-not-ready]") {
				t.Errorf("a credential no longer ready was admitted: %+v", r)
			}
		}},
		{"the Credential fixed", func() {
			f.store.update("hf", func(c *v1alpha1.Credential) {
				c.Status.Conditions = []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "SecretFound"}}
			})
		}, func(t *testing.T, r responseOf) {
			if !r.allowed {
				t.Errorf("refused after the credential was fixed: %s", r.message)
			}
		}},
		{"the namespace's labels", func() { f.namespaces.set("credgate.dev/require-temporary", "true") },
			func(t *testing.T, r responseOf) {
				if r.allowed || !strings.Contains(r.message, "[static-credentials]") {
					t.Errorf("static AWS keys admitted in a namespace that requires temporary ones: %+v", r)
				}
			}},
		{"the namespace's labels back", func() { f.namespaces.set("credgate.dev/require-temporary", "false") },
			func(t *testing.T, r responseOf) {
				if !r.allowed {
					t.Errorf("refused after the label was set back: %s", r.message)
				}
			}},
		{"the policy revision", func() { f.engine.Swap(compileWith(t, denyTrainers)) },
			func(t *testing.T, r responseOf) {
				if r.allowed || !strings.Contains(r.message, "[no-trainers]") {
					t.Errorf("the new revision's rule did not decide: %+v", r)
				}
			}},
		{"the built-in revision back", func() {
			rev, _ := builtinPolicies()
			f.engine.Swap(rev)
		}, func(t *testing.T, r responseOf) {
			if !r.allowed {
				t.Errorf("refused after the revision was swapped back: %s", r.message)
			}
		}},
		{"a Credential expiring", func() {
			f.store.update("aws", func(c *v1alpha1.Credential) {
				c.Status.ExpiresAt = &metav1.Time{Time: time.Now().Add(1500 * time.Millisecond)}
			})
		}, func(t *testing.T, r responseOf) {
			if !r.allowed {
				t.Errorf("refused before the credential expired: %s", r.message)
			}
		}},
		{"the clock passing the expiry", func() { time.Sleep(1600 * time.Millisecond) },
			func(t *testing.T, r responseOf) {
				if r.allowed || !strings.Contains(r.message, "expired") {
					t.Errorf("a credential past its expiry was admitted: %+v", r)
				}
			}},
		{"a Credential removed", func() {
			f.store.update("aws", func(c *v1alpha1.Credential) { c.Status.ExpiresAt = nil })
			f.admit(t, body) // admitted again, and kept
			f.store.delete("hf")
		}, func(t *testing.T, r responseOf) {
			if r.allowed || !strings.Contains(r.message, "[unknown-credential]") {
				t.Errorf("admitted with a credential that no longer exists: %+v", r)
			}
		}},
	}
	for _, s := range steps {
		// Before a change from an admitted state, the admission is reused: else the step would
		// test nothing. (Refusals are not kept.)
		if r, _ := f.admit(t, body); r.allowed {
			if _, reused := f.admit(t, body); !reused {
				t.Fatalf("before %s: an identical admission is not reused", s.name)
			}
		}
		s.change()
		r, reused := f.admit(t, body)
		if reused {
			t.Errorf("after %s: the decision was reused", s.name)
		}
		t.Run(s.name, func(t *testing.T) { s.check(t, r) })
	}
}

// TestReuseIsPerAdmission: a request that differs in anything a policy sees — the user, a
// group, the name, dry-run, a byte of the object — is decided on its own.
func TestReuseIsPerAdmission(t *testing.T) {
	body := readFixture(t, "pod-training.json")
	variants := map[string][]byte{
		"user":   editRequest(t, body, func(req map[string]any) { req["userInfo"].(map[string]any)["username"] = "alice" }),
		"groups": editRequest(t, body, func(req map[string]any) { req["userInfo"].(map[string]any)["groups"] = []any{"system:authenticated"} }),
		"name":   editRequest(t, body, func(req map[string]any) { req["name"] = "train-llm-x" }),
		"dryRun": editRequest(t, body, func(req map[string]any) { req["dryRun"] = true }),
		"object": editRequest(t, body, func(req map[string]any) {
			req["object"].(map[string]any)["metadata"].(map[string]any)["labels"].(map[string]any)["team"] = "vision"
		}),
	}
	for name, v := range variants {
		t.Run(name, func(t *testing.T) {
			f := newReuseFixture(t)
			f.admit(t, body)
			if _, reused := f.admit(t, v); reused {
				t.Errorf("a request with another %s reused the decision", name)
			}
			if _, reused := f.admit(t, v); !reused {
				t.Errorf("the %s variant is not reused when repeated", name)
			}
		})
	}
}

// TestReuseAcrossManagedFields: the pods a Job creates from one template differ in their
// managed fields alone (the API server stamps the second), and reuse one decision while no
// policy may read those fields; a revision whose policy reads them decides each afresh, and
// answers by what it read.
func TestReuseAcrossManagedFields(t *testing.T) {
	body := readFixture(t, "pod-training.json")
	managedBy := func(manager, at string) []byte { return withManagedFields(t, body, manager, at) }
	first := managedBy("kube-controller-manager", "2026-12-03T01:00:00Z")
	later := managedBy("kube-controller-manager", "2026-12-03T01:00:09Z")
	other := managedBy("mallory", "2026-12-03T01:00:09Z")

	f := newReuseFixture(t)
	want, _ := f.admit(t, first)
	got, reused := f.admit(t, later)
	if !reused {
		t.Fatal("a pod differing in its managed fields alone did not reuse the decision, with the built-in policies")
	}
	if got != want {
		t.Errorf("the reused answer differs from the review's:\n got %+v\nwant %+v", got, want)
	}

	f.engine.Swap(compileWith(t, `package credgate.admission

deny contains {"rule": "managers", "message": "managed by mallory"} if {
	some e in input.pod.metadata.managedFields
	e.manager == "mallory"
}
`))
	if !f.engine.Current().ReadsManagedFields() {
		t.Fatal("the revision is not found to read managed fields")
	}
	f.admit(t, first)
	if resp, reused := f.admit(t, other); reused || resp.allowed {
		t.Errorf("a policy reading managed fields: the pod managed by mallory reused the decision (%t) or was admitted (%t)", reused, resp.allowed)
	}
	if _, reused := f.admit(t, later); reused {
		t.Error("a policy reading managed fields: a pod with other managed fields reused the decision")
	}
	if _, reused := f.admit(t, later); !reused {
		t.Error("a policy reading managed fields: the same pod again did not reuse its decision")
	}
}

// TestReuseAcrossManagedFieldsHidden: policies that read managed fields where an attacker's
// review found the first analysis blind — a key in a rule head's ref, a with on an object.get —
// refuse mallory's pod though a pod differing in managed fields alone was admitted just before.
// A tenant names the manager (?fieldManager=, or its client's user agent).
func TestReuseAcrossManagedFieldsHidden(t *testing.T) {
	body := readFixture(t, "pod-training.json")
	managedBy := func(manager, at string) []byte { return withManagedFields(t, body, manager, at) }
	first := managedBy("kube-controller-manager", "2026-12-03T01:00:00Z")
	mallory := managedBy("mallory", "2026-12-03T01:00:09Z")
	for name, policy := range map[string]string{
		"rule head ref": `package credgate.admission

seen[input.pod.metadata.managedFields[_].manager] contains "x"

deny contains {"rule": "managers", "message": "managed by mallory"} if seen.mallory
`,
		"with on object.get": `package credgate.admission

deny contains {"rule": "managers", "message": "managed by mallory"} if {
	object.get(input, ["pod", "spec", "zz"], 0, n) with input.pod.spec.zz as count([1 | input.pod.metadata.managedFields[_].manager == "mallory"])
	n > 0
}
`,
	} {
		t.Run(name, func(t *testing.T) {
			f := newReuseFixture(t)
			f.engine.Swap(compileWith(t, policy))
			if resp, _ := f.admit(t, mallory); resp.allowed {
				t.Fatal("mallory's pod is admitted when decided afresh: the policy does not test what it should")
			}
			f = newReuseFixture(t)
			f.engine.Swap(compileWith(t, policy))
			if resp, _ := f.admit(t, first); !resp.allowed {
				t.Fatalf("the first pod is refused: %s", resp.message)
			}
			if resp, reused := f.admit(t, mallory); reused || resp.allowed {
				t.Errorf("mallory's pod reused the decision (%t) or was admitted (%t)", reused, resp.allowed)
			}
		})
	}
}

// withManagedFields is the admission request body with its object's managed fields one entry
// of manager's, at time at.
func withManagedFields(t *testing.T, body []byte, manager, at string) []byte {
	t.Helper()
	return editRequest(t, body, func(req map[string]any) {
		req["object"].(map[string]any)["metadata"].(map[string]any)["managedFields"] = []any{map[string]any{
			"manager": manager, "operation": "Update", "apiVersion": "v1", "time": at,
			"fieldsType": "FieldsV1", "fieldsV1": map[string]any{"f:metadata": map[string]any{}},
		}}
	})
}

// TestReuseNeedsADeterministicRevision: user policies that read the clock (or anything OPA
// marks non-deterministic) decide every admission afresh.
func TestReuseNeedsADeterministicRevision(t *testing.T) {
	body := readFixture(t, "pod-training.json")
	f := newReuseFixture(t)
	f.engine.Swap(compileWith(t, `package credgate.admission

deny contains {"rule": "night", "message": "no training at night"} if {
	[h, _, _] := time.clock([time.now_ns(), "UTC"])
	h > 25
}
`))
	for range 3 {
		if _, reused := f.admit(t, body); reused {
			t.Fatal("a decision of a revision that reads the clock was reused")
		}
	}
	if f.decisions.Len() != 0 {
		t.Errorf("%d decisions kept, want none", f.decisions.Len())
	}
}

// TestReuseSkipsWhatItMustNot: a refusal is not kept (it is audited and evented each time),
// nor a decision with a Credential missing, nor one of a validating webhook's that a mutating
// one's could answer (each webhook keeps its own).
func TestReuseSkipsWhatItMustNot(t *testing.T) {
	f := newReuseFixture(t)
	refused := readFixture(t, "pod-unknown-credential.json")
	for range 2 {
		if r, reused := f.admit(t, refused); reused || r.allowed {
			t.Fatalf("a refusal: reused=%t allowed=%t", reused, r.allowed)
		}
	}
	if f.decisions.Len() != 0 {
		t.Errorf("%d decisions kept after refusals, want none", f.decisions.Len())
	}
	body := readFixture(t, "pod-training.json")
	f.admit(t, body)
	before := f.decisions.Stats()
	resp, _ := serve(t, newWebhook(t, f.validating, logr.Discard()), body)
	if !resp.Allowed || len(resp.Patch) != 0 {
		t.Fatalf("validating webhook: allowed=%t patch=%d bytes", resp.Allowed, len(resp.Patch))
	}
	if f.decisions.Stats().Hits != before.Hits {
		t.Error("the validating webhook reused the mutating webhook's decision")
	}
}

// TestReusedDecisionsAreBounded: however many distinct admissions, at most the bound are kept.
func TestReusedDecisionsAreBounded(t *testing.T) {
	f := newReuseFixture(t)
	body := readFixture(t, "pod-training.json")
	for i := range 50 {
		f.admit(t, editRequest(t, body, func(req map[string]any) { req["name"] = "p" + strconv.Itoa(i) }))
		if n := f.decisions.Len(); n > 8 {
			t.Fatalf("%d decisions kept, bound 8", n)
		}
	}
	if f.decisions.Len() != 8 {
		t.Errorf("%d decisions kept, want the bound, 8", f.decisions.Len())
	}
}

// TestReuseSkipsTheReview: a reused decision resolves nothing beyond checking each
// Credential's version — the same lookups, no policy evaluation — and is counted as the
// review's would be (patched, each credential injected), and as reused.
func TestReuseSkipsTheReview(t *testing.T) {
	f := newReuseFixture(t)
	metrics, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	f.mutating.Metrics = metrics
	body := readFixture(t, "pod-training.json")
	f.admit(t, body)
	f.admit(t, body)
	gets := f.store.lookups()
	if _, reused := f.admit(t, body); !reused {
		t.Fatal("not reused")
	}
	if n := f.store.lookups() - gets; n != 3 {
		t.Errorf("a reuse made %d credential lookups, want 3 (one per credential, its version)", n)
	}
	for what, got := range map[string]float64{
		"patched": testutil.ToFloat64(metrics.requests.WithLabelValues("/mutate-v1-pod", "create", decisionPatched)),
		"aws":     testutil.ToFloat64(metrics.injections.WithLabelValues("aws")),
		"reused":  testutil.ToFloat64(metrics.reused.WithLabelValues("/mutate-v1-pod")),
	} {
		if want := map[string]float64{"patched": 3, "aws": 3, "reused": 2}[what]; got != want {
			t.Errorf("%s = %v, want %v", what, got, want)
		}
	}
	if !bytes.Contains(body, []byte(`"credentials.credgate.dev/aws"`)) {
		t.Fatal("the fixture requests other credentials than the test counts")
	}
}

const denyTrainers = `package credgate.admission

deny contains {"rule": "no-trainers", "message": "no trainers today"} if {
	some c in input.pod.spec.containers
	c.name == "trainer"
}
`

// compileWith compiles the built-in policies with one user module.
func compileWith(t *testing.T, module string) *policies.Revision {
	t.Helper()
	rev := withUserPolicy(t, "user/test.rego", module)
	return rev
}
