package review

import (
	"context"
	"strings"
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

// TestKeyIgnoresManagedFieldsAlone: with IgnoreManagedFields, objects that differ in their
// metadata.managedFields alone share a Key; any other difference, a member of the same name
// elsewhere, an object the API server would not write, or the flag off, keeps them apart.
func TestKeyIgnoresManagedFieldsAlone(t *testing.T) {
	const (
		a = `{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"train-","labels":{"app":"x"},"managedFields":[{"manager":"kube-controller-manager","operation":"Update","time":"2026-12-03T01:00:00Z"}],"namespace":"ml"},"spec":{"containers":[{"name":"c"}]}}`
		// b is a with another second in its managed fields, and an empty list; c without any.
		b1 = `{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"train-","labels":{"app":"x"},"managedFields":[{"manager":"kube-controller-manager","operation":"Update","time":"2026-12-03T01:00:07Z"}],"namespace":"ml"},"spec":{"containers":[{"name":"c"}]}}`
		b2 = `{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"train-","labels":{"app":"x"},"managedFields":[],"namespace":"ml"},"spec":{"containers":[{"name":"c"}]}}`
	)
	key := func(obj string, ignore bool) Key {
		return KeyOf(KeyRequest{Webhook: "/mutate-v1-pod", Operation: "CREATE", Namespace: "ml", Object: []byte(obj), IgnoreManagedFields: ignore})
	}
	for _, b := range []string{b1, b2} {
		if key(a, true) != key(b, true) {
			t.Errorf("objects differing in managed fields alone have different keys:\n%s\n%s", a, b)
		}
		if key(a, false) == key(b, false) {
			t.Errorf("without IgnoreManagedFields, objects differing in managed fields share a key:\n%s\n%s", a, b)
		}
	}
	for name, other := range map[string]string{
		"a label":                   strings.Replace(a, `"app":"x"`, `"app":"y"`, 1),
		"the spec":                  strings.Replace(a, `"name":"c"`, `"name":"d"`, 1),
		"no managed fields":         strings.Replace(a, `"managedFields":[{"manager":"kube-controller-manager","operation":"Update","time":"2026-12-03T01:00:00Z"}],`, ``, 1),
		"a member after them":       strings.Replace(a, `"namespace":"ml"`, `"namespace":"ml2"`, 1),
		"the same name in a label":  strings.Replace(a, `"labels":{"app":"x"}`, `"labels":{"app":"x","managedFields":"1"}`, 1),
		"the same name in the spec": strings.Replace(a, `"spec":{`, `"spec":{"managedFields":[],`, 1),
	} {
		if other == a {
			t.Fatalf("%s: the case changes nothing", name)
		}
		if key(a, true) == key(other, true) {
			t.Errorf("%s: objects that differ share a key:\n%s\n%s", name, a, other)
		}
	}
	// Two metadata members, or a name twice inside it: the decoder the webhook uses refuses
	// such an object; its Key covers it whole.
	for _, odd := range []string{
		strings.Replace(b1, `"spec":`, `"metadata":{"labels":{"app":"admin"}},"spec":`, 1),
		strings.Replace(b1, `"namespace":"ml"`, `"namespace":"ml","managedFields":[]`, 1),
		`[1,2]`, `{"metadata":`, ``,
	} {
		if _, _, ok := managedFields([]byte(odd)); ok {
			t.Errorf("managed fields found in %s", odd)
		}
	}
	if s, e, ok := managedFields([]byte(a)); !ok || !strings.HasPrefix(a[s:e], `:[{"manager"`) || !strings.HasPrefix(a[e:], `,"namespace"`) {
		t.Errorf("managedFields(a) = %d, %d, %t: %q", s, e, ok, a[s:e])
	}
}
