package app

// Regression tests of attacks on the CredentialPolicy status writer and lister: each was a
// finding of a review, and each fails if its fix is undone.

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/policies"
)

func z2Client(t *testing.T, objs ...client.Object) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(&v1alpha1.CredentialPolicy{}).Build()
}

func z2Watcher(t *testing.T, dir string, c client.Client) *policies.Watcher {
	t.Helper()
	rev, err := policies.Load(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return &policies.Watcher{Dir: dir, Objects: policyObjects(c), Engine: policies.NewEngine(rev), Log: logr.Discard()}
}

func z2Denies(t *testing.T, e *policies.Engine, rule string) bool {
	t.Helper()
	in := &policies.Input{Operation: "CREATE", Namespace: "ns", Name: "p", User: "alice", Version: "v1", Kind: "Pod",
		Object: []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}}`)}
	v, err := in.Value()
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Evaluate(t.Context(), v)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range res.Deny {
		if x.Rule == rule {
			return true
		}
	}
	return false
}

func z2Rule(id string) string {
	return "package credgate.admission\n\ndeny contains {\"rule\": \"" + id + "\", \"message\": \"no\"} if true\n"
}

func z2SetSpec(t *testing.T, c client.Client, name string, gen int64, rego string) {
	t.Helper()
	var p v1alpha1.CredentialPolicy
	if err := c.Get(t.Context(), client.ObjectKey{Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Rego = rego
	p.Generation = gen // the API server's bump
	if err := c.Update(t.Context(), &p); err != nil {
		t.Fatal(err)
	}
}

func z2Get(t *testing.T, c client.Client, name string) v1alpha1.CredentialPolicy {
	t.Helper()
	var p v1alpha1.CredentialPolicy
	if err := c.Get(t.Context(), client.ObjectKey{Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

// W1 (end to end of policies B4): generation 1 serves while generation 2 fails its canary,
// and status.served says so; the operator's typo in --policy-dir (a failure no object is blamed
// for) makes the leader clear status.served while generation 1 still serves. The typo fixed,
// a replica that starts serves nothing of the policy.
func TestAttack2WriterClearsServed(t *testing.T) {
	dir := t.TempDir()
	c := z2Client(t, &v1alpha1.CredentialPolicy{ObjectMeta: metav1.ObjectMeta{Name: "a", UID: "ua", Generation: 1},
		Spec: v1alpha1.CredentialPolicySpec{Rego: z2Rule("a-gen1")}})
	w := z2Watcher(t, dir, c)
	sw := &policyStatusWriter{watcher: w, client: c, reader: c, log: logr.Discard(), retry: time.Second}
	reload := func() {
		if _, err := w.Reload(t.Context()); err != nil {
			t.Logf("reload: %v", err)
		}
		if !sw.write(t.Context()) {
			t.Fatal("status not written")
		}
	}
	reload()
	z2SetSpec(t, c, "a", 2, "package credgate.admission\n\nlevel := 1 if true\n\nlevel := 2 if true\n\ndeny contains {\"rule\": \"a2\", \"message\": \"m\"} if level > 0\n")
	reload()
	if s := z2Get(t, c, "a").Status.Served; s == nil || s.Generation != 1 {
		t.Fatalf("setup: status.served = %+v, want generation 1", s)
	}
	if err := os.WriteFile(filepath.Join(dir, "typo.rego"), []byte("package team.x\n\nf if {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reload()
	st := z2Get(t, c, "a").Status
	t.Logf("after the typo: a-gen1 enforced=%v, status.served=%+v, ready=%+v", z2Denies(t, w.Engine, "a-gen1"), st.Served, st.Conditions)
	if err := os.Remove(filepath.Join(dir, "typo.rego")); err != nil {
		t.Fatal(err)
	}
	fresh := z2Watcher(t, dir, c) // a replica starting (rollout, node drain) after the fix
	if _, err := fresh.Reload(t.Context()); err != nil {
		t.Logf("fresh reload: %v", err)
	}
	t.Logf("fresh replica: loaded=%v a-gen1 enforced=%v", fresh.Loaded(), z2Denies(t, fresh.Engine, "a-gen1"))
	if st.Served == nil || !z2Denies(t, fresh.Engine, "a-gen1") {
		t.Errorf("a typo in --policy-dir erased status.served of a (still served by the running replica); the next replica serves nothing of a")
	}
}

// W2: the writer does not compare UIDs: statuses computed for an object are written into the
// object of the same name created since (deleted, re-created, edited to the same generation),
// so the new object's status.served is the old object's Rego, which a replica then serves for
// it (a deleted object's last good generation for the new object of its name).
func TestAttack2WriterWritesOldObjectsServed(t *testing.T) {
	old := &v1alpha1.CredentialPolicy{ObjectMeta: metav1.ObjectMeta{Name: "a", UID: "old", Generation: 1},
		Spec: v1alpha1.CredentialPolicySpec{Rego: z2Rule("old-gen1")}}
	c := z2Client(t, old)
	w := z2Watcher(t, "", c)
	sw := &policyStatusWriter{watcher: w, client: c, reader: c, log: logr.Discard(), retry: time.Second}
	if _, err := w.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	z2SetSpec(t, c, "a", 2, "package credgate.admission\n\ndeny contains x if {\n")
	_, _ = w.Reload(t.Context()) // statuses: a at generation 2 broken, generation 1 served
	// Between the watcher's list and the writer's get, a is deleted and created again (and
	// edited once: generation 2).
	if err := c.Delete(t.Context(), z2GetPtr(t, c, "a")); err != nil {
		t.Fatal(err)
	}
	if err := c.Create(t.Context(), &v1alpha1.CredentialPolicy{ObjectMeta: metav1.ObjectMeta{Name: "a", UID: types.UID("new"), Generation: 2},
		Spec: v1alpha1.CredentialPolicySpec{Rego: "package credgate.admission\n\ndeny contains y if {\n"}}); err != nil {
		t.Fatal(err)
	}
	sw.write(context.Background())
	p := z2Get(t, c, "a")
	t.Logf("new object %s: status.served=%+v", p.UID, p.Status.Served)
	fresh := z2Watcher(t, "", c)
	_, _ = fresh.Reload(t.Context())
	if z2Denies(t, fresh.Engine, "old-gen1") {
		t.Errorf("the deleted object's generation 1 is served for the new object of its name (via status.served)")
	}
}

func z2GetPtr(t *testing.T, c client.Client, name string) *v1alpha1.CredentialPolicy {
	p := z2Get(t, c, name)
	return &p
}
