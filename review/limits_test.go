package review

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/policies"
)

// countingStore finds no Credential and counts the lookups.
type countingStore struct{ gets int }

func (s *countingStore) Get(_ context.Context, _, name string) (*v1alpha1.Credential, error) {
	s.gets++
	return nil, apierrors.NewNotFound(schema.GroupResource{Group: "credgate.dev", Resource: "credentials"}, name)
}

func (s *countingStore) Names(context.Context, string) ([]string, error) { return nil, nil }

// loudPolicy denies with n violations of long messages.
type loudPolicy struct{ n, size int }

func (p loudPolicy) Evaluate(context.Context, ast.Value) (policies.Result, error) {
	var r policies.Result
	for i := range p.n {
		r.Deny = append(r.Deny, policies.Violation{Rule: "user-rule", Message: fmt.Sprintf("%d %s", i, strings.Repeat("é", p.size))})
	}
	return r, nil
}

func labelledPod(labels, containers int) *corev1.Pod {
	p := &corev1.Pod{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p", Labels: map[string]string{}}}
	for i := range labels {
		p.Labels[fmt.Sprintf("credentials.credgate.dev/missing-%d", i)] = "true"
	}
	for i := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprintf("c%d", i), Image: "x"})
	}
	return p
}

func TestLimitsRefuseBeforeAnyLookup(t *testing.T) {
	for _, tc := range []struct {
		name              string
		labels, ctrs      int
		wantLimit         bool
		wantLookupsAtMost int
	}{
		{name: "20,000 credential labels", labels: 20000, ctrs: 1, wantLimit: true},
		{name: "at the label limit", labels: MaxCredentialLabels, ctrs: 1, wantLookupsAtMost: MaxCredentialLabels},
		{name: "16,000 containers", labels: 1, ctrs: 16000, wantLimit: true},
		{name: "many containers, no credentials", labels: 0, ctrs: 16000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store := &countingStore{}
			r := &Reviewer{Store: store, Policy: loudPolicy{}}
			d, err := r.Review(t.Context(), Request{Namespace: "ns", Object: labelledPod(tc.labels, tc.ctrs), GVK: corev1.SchemeGroupVersion.WithKind("Pod")})
			if err != nil {
				t.Fatal(err)
			}
			limited := len(d.Violations) == 1 && d.Violations[0].Rule == RuleLimit
			if limited != tc.wantLimit {
				t.Fatalf("violations %v, want limit-exceeded: %v", d.Violations, tc.wantLimit)
			}
			if store.gets > tc.wantLookupsAtMost {
				t.Errorf("%d credential lookups, want at most %d", store.gets, tc.wantLookupsAtMost)
			}
			if len(d.Message()) > 4096 {
				t.Errorf("refusal message of %d bytes", len(d.Message()))
			}
		})
	}
}

func TestDecisionsAreBounded(t *testing.T) {
	r := &Reviewer{Store: &countingStore{}, Policy: loudPolicy{n: 500, size: 100000}}
	d, err := r.Review(t.Context(), Request{Namespace: "ns", Object: labelledPod(1, 1), GVK: corev1.SchemeGroupVersion.WithKind("Pod")})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Violations) != MaxViolations {
		t.Errorf("%d violations kept, want %d", len(d.Violations), MaxViolations)
	}
	for _, v := range d.Violations {
		if len(v.Message) > MaxMessageBytes || !strings.HasSuffix(v.Message, "(truncated)") && !strings.Contains(v.Message, "more violations") {
			t.Fatalf("message of %d bytes: %.80q", len(v.Message), v.Message)
		}
	}
	if last := d.Violations[len(d.Violations)-1].Message; !strings.Contains(last, fmt.Sprintf("and %d more violations", 500+1-MaxViolations)) {
		t.Errorf("last violation: %q", last)
	}
	if n := len(d.Message()); n > MaxViolations*(MaxMessageBytes+64) {
		t.Errorf("refusal message of %d bytes", n)
	}
}

func TestObjectSizeBounded(t *testing.T) {
	r := &Reviewer{Store: &countingStore{}, Policy: loudPolicy{}}
	_, err := r.Review(t.Context(), Request{Namespace: "ns", Object: labelledPod(1, 1), Raw: make([]byte, MaxObjectBytes+1),
		GVK: corev1.SchemeGroupVersion.WithKind("Pod")})
	if err == nil || !strings.Contains(err.Error(), "at most") {
		t.Fatalf("error %v", err)
	}
}

// fullStore holds one generic Credential of 64 literal variables under every name asked.
type fullStore struct{}

func (fullStore) Get(_ context.Context, ns, name string) (*v1alpha1.Credential, error) {
	c := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeGeneric}}
	for i := range 64 {
		c.Spec.Env = append(c.Spec.Env, v1alpha1.EnvVar{Name: fmt.Sprintf("V%d", i), Value: new("x")})
	}
	return c, nil
}

func (fullStore) Names(context.Context, string) ([]string, error) { return nil, nil }

func TestInjectionsBounded(t *testing.T) {
	r := &Reviewer{Store: fullStore{}, Policy: loudPolicy{}}
	d, err := r.Review(t.Context(), Request{Namespace: "ns", Object: labelledPod(MaxCredentialLabels, MaxContainers), GVK: corev1.SchemeGroupVersion.WithKind("Pod")})
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Violations) != 1 || d.Violations[0].Rule != RuleLimit || d.Mutated || len(d.Patch) != 0 {
		t.Fatalf("violations %v, mutated %v, %d patch operations", d.Violations, d.Mutated, len(d.Patch))
	}
	// Within the bound, the pod is injected.
	d, err = r.Review(t.Context(), Request{Namespace: "ns", Object: labelledPod(2, 4), GVK: corev1.SchemeGroupVersion.WithKind("Pod")})
	if err != nil || d.Denied() || !d.Mutated {
		t.Fatalf("err %v, violations %v, mutated %v", err, d.Violations, d.Mutated)
	}
}

// quotingPolicy denies with a message that quotes value after a long preamble, so that the
// value straddles the cut at MaxMessageBytes.
type quotingPolicy struct{ value string }

func (p quotingPolicy) Evaluate(context.Context, ast.Value) (policies.Result, error) {
	msg := strings.Repeat("x", MaxMessageBytes-40) + " the key is " + p.value
	return policies.Result{Deny: []policies.Violation{{Rule: "user-rule", Message: msg}}, Warn: []policies.Violation{{Rule: "user-warn", Message: msg}}}, nil
}

// A value is redacted before a message is cut: cut first, its head would no longer match and
// would leave credgate.
func TestRedactedBeforeCut(t *testing.T) {
	secret := "-----BEGIN PRIVATE KEY-----" + strings.Repeat("Q", 2000)
	pod := labelledPod(1, 1)
	pod.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "KEY", Value: secret}}
	r := &Reviewer{Store: &countingStore{}, Policy: quotingPolicy{value: secret}}
	d, err := r.Review(t.Context(), Request{Namespace: "ns", Object: pod, GVK: corev1.SchemeGroupVersion.WithKind("Pod")})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range append([]string{d.Message()}, d.Warnings...) {
		if strings.Contains(s, "BEGIN PRIVATE KEY") || strings.Contains(s, "QQQQ") {
			t.Errorf("a message holds part of the value: %.60q...", s[len(s)-80:])
		}
		if !strings.Contains(s, "[redacted]") {
			t.Errorf("not redacted: ...%q", s[len(s)-60:])
		}
	}
}

// TestMessageSaysEachRefusalOnce: two credentials tripping one rule with one message are said
// once in the refusal; different messages of one rule are each said.
func TestMessageSaysEachRefusalOnce(t *testing.T) {
	d := Decision{Kind: "Job", Violations: []Violation{
		{Rule: "multiple-cloud-identities", Credential: "aws-a", Message: "two aws identities"},
		{Rule: "multiple-cloud-identities", Credential: "aws-b", Message: "two aws identities"},
		{Rule: "admin-scoped-credential", Credential: "aws-a", Message: "aws-a is admin"},
		{Rule: "admin-scoped-credential", Credential: "aws-b", Message: "aws-b is admin"},
	}}
	want := "credgate refused the Job: [multiple-cloud-identities] two aws identities; [admin-scoped-credential] aws-a is admin; [admin-scoped-credential] aws-b is admin"
	if got := d.Message(); got != want {
		t.Errorf("Message() = %q, want %q", got, want)
	}
}
