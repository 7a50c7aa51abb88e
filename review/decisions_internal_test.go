package review

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
	"github.com/credgate/credgate/policies"
)

// TestReuseEndsWhenPoliciesSeeTheExpiry: policies see a Credential's expiresAt to the second,
// truncated, so a decision is reused only until that second, not until the instant itself.
func TestReuseEndsWhenPoliciesSeeTheExpiry(t *testing.T) {
	rev, err := policies.Load(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	r := &Reviewer{Policy: policies.NewEngine(rev)}
	expiry := time.Date(2026, 12, 2, 10, 0, 0, 700_000_000, time.UTC)
	src := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "aws", UID: "u", ResourceVersion: "1"},
		Status: v1alpha1.CredentialStatus{ExpiresAt: &metav1.Time{Time: expiry}}}
	d := Decision{Credentials: []string{"aws"}, Resolved: []credential.Resolved{{Name: "aws", Source: src}}, PolicyRevision: rev.ID()}
	r.recordInputs(Request{}, nil, &d)
	if !d.inputs.reusable {
		t.Fatal("the decision is not reusable")
	}
	if want := expiry.Truncate(time.Second); !d.inputs.until.Equal(want) {
		t.Errorf("reused until %s, want %s (the second policies see it expire)", d.inputs.until, want)
	}
}

// TestReuseLastsAMinuteAtMost: however unchanged its inputs, a decision is reused for
// MaxReuseAge at most.
func TestReuseLastsAMinuteAtMost(t *testing.T) {
	rev, err := policies.Load(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	src := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "hf", Namespace: "ml", UID: "u", ResourceVersion: "1"}}
	r := &Reviewer{Policy: policies.NewEngine(rev), Store: credential.NewStaticStore("ml", src)}
	d := Decision{Credentials: []string{"hf"}, Resolved: []credential.Resolved{{Name: "hf", Source: src}}, PolicyRevision: rev.ID()}
	r.recordInputs(Request{}, nil, &d)
	c := NewDecisions(4)
	now := time.Now()
	c.now = func() time.Time { return now }
	k := KeyOf(KeyRequest{Webhook: "/mutate-v1-pod", Namespace: "ml", Object: []byte("{}")})
	c.Put(k, &d, nil)
	now = now.Add(MaxReuseAge - time.Second)
	if _, ok := c.Get(context.Background(), r, k, "ml"); !ok {
		t.Fatal("not reused within MaxReuseAge")
	}
	now = now.Add(time.Second)
	if _, ok := c.Get(context.Background(), r, k, "ml"); ok {
		t.Error("reused after MaxReuseAge")
	}
}
