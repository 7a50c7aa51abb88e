package policies

// Regression tests of the attacks a second review tried on policy objects: each was a
// finding, and each fails if its fix is undone.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func z2Reload(t *testing.T, w *Watcher) error {
	t.Helper()
	_, err := w.Reload(t.Context())
	return err
}

// tenantPod evaluates, as an admission would, a pod of a tenant in namespace ns (labels
// nsLabels) carrying the given pod labels and annotations; the input is kept for the canary.
func z2TenantPod(t *testing.T, e *Engine, ns string, nsLabels map[string]string, podMeta string) {
	t.Helper()
	in := &Input{Operation: "CREATE", Namespace: ns, NamespaceLabels: nsLabels, Name: "innocuous", User: "tenant",
		Version: "v1", Kind: "Pod", Object: []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"innocuous",` + podMeta + `},"spec":{"containers":[{"name":"c","image":"i"}]}}`)}
	v, err := in.Value()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Evaluate(t.Context(), v); err != nil {
		t.Fatalf("the tenant's admission failed: %v", err)
	}
	if len(e.RecentInputs()) == 0 {
		t.Fatal("the tenant's input was not kept")
	}
}

// B1 (tenant): a served object scoped to team a (not evaluated at team b's admissions, so a
// team-b input on which it errors is kept as a recent input) fails every canary that evaluates
// it on that input. A tenant of team b thereby blocks every policy change on the replica: a new
// object is set aside, a deleted one stays enforced; and the failures are memoised, so the
// block outlives the tenant's input.
func TestAttack2TenantFreezesPolicyChanges(t *testing.T) {
	w, _ := newTestWatcher(t, "")
	scoped := Object{Name: "team-a-tiers", UID: "s", Generation: 1,
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}},
		Rego: `package credgate.admission

tier := "gold" if input.object.metadata.labels.tier == "gold"

tier := "free" if input.object.metadata.annotations.plan == "free"

deny contains {"rule": "gold-only", "message": "team a runs gold pods only"} if tier == "free"
`}
	objs := []Object{scoped, {Name: "old", UID: "o", Generation: 1, Rego: atkRule("old-rule")}}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	if err := z2Reload(t, w); err != nil {
		t.Fatal(err)
	}
	if !atkDenies(t, w.Engine, "old-rule") {
		t.Fatal("setup: old not served")
	}
	// A tenant of team b (not selected by team-a-tiers) creates an ordinary pod: admitted, and
	// kept for the canary (at most one input a second is kept: the tenant's comes a second on).
	time.Sleep(1100 * time.Millisecond)
	z2TenantPod(t, w.Engine, "team-b", map[string]string{"team": "b"},
		`"labels":{"tier":"gold"},"annotations":{"plan":"free"}`)

	// The platform team adds a policy against team b's pods and deletes "old".
	objs = []Object{scoped, {Name: "new", UID: "n", Generation: 1, Rego: atkRule("new-rule")}}
	err := z2Reload(t, w)
	t.Logf("reload: err=%v statuses=%+v", err, w.ObjectStatuses())
	newServed, oldServed := atkDenies(t, w.Engine, "new-rule"), atkDenies(t, w.Engine, "old-rule")
	t.Logf("after the change: new enforced=%v, deleted old still enforced=%v", newServed, oldServed)

	// The tenant's input leaves the ring: the memoised failures keep the block.
	w.Engine.recent = recentInputs{}
	for range 3 {
		err = z2Reload(t, w)
	}
	newLater, oldLater := atkDenies(t, w.Engine, "new-rule"), atkDenies(t, w.Engine, "old-rule")
	t.Logf("after the input is gone: err=%v new enforced=%v, deleted old still enforced=%v, status of new %+v",
		err, newLater, oldLater, w.ObjectStatuses()["new"])
	if !newServed || oldServed || !newLater || oldLater {
		t.Errorf("a tenant's admitted pod blocks policy changes (new enforced %v/%v, deleted still enforced %v/%v)",
			newServed, newLater, oldServed, oldLater)
	}
}

// B2: on a fresh replica, an object set aside in phase 1 onto its status.served generation
// (which is good) is dropped when any failure is unplaced (here another object whose canary
// error is located in a --policy-dir helper): phase 2 starts from what this replica served,
// nothing, and skips the set-aside objects. The replica is ready; the old generation is not
// enforced, and its status loses ServedObject, so the leader clears status.served.
func TestAttack2FreshReplicaDropsGoodFallback(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "helpers.rego", "package team.helpers\n\npick(x) := 1 if x > 0\n\npick(x) := 2 if x > 1\n")
	w, _ := newTestWatcher(t, dir) // a fresh replica
	objs := []Object{
		{Name: "a", UID: "a", Generation: 2, Rego: "package credgate.admission\n\ndeny contains x if {\n",
			Fallback: &Object{Name: "a", UID: "a", Generation: 1, Rego: atkRule("a-gen1")}},
		{Name: "careless", UID: "c", Generation: 1, Rego: "package credgate.admission\n\nimport data.team.helpers\n\ndeny contains {\"rule\": \"c\", \"message\": sprintf(\"%v\", [helpers.pick(5)])} if true\n"},
	}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	err := z2Reload(t, w)
	st := w.ObjectStatuses()["a"]
	t.Logf("err=%v loaded=%v status of a=%+v", err, w.Loaded(), st)
	if w.Loaded() == nil && !atkDenies(t, w.Engine, "a-gen1") {
		t.Errorf("ready, yet a's served generation 1 (status.served) is not enforced; ServedObject=%v (the writer clears status.served)", st.ServedObject)
	}
}

// B2b: the same without a policy directory: another object whose status.served generation no
// longer compiles (here: a typo the input schema check, new in this release, now refuses).
func TestAttack2FreshReplicaBrokenFallbackDropsOthers(t *testing.T) {
	w, _ := newTestWatcher(t, "")
	broken := "package credgate.admission\n\ndeny contains x if {\n"
	objs := []Object{
		{Name: "a", UID: "a", Generation: 2, Rego: broken, Fallback: &Object{Generation: 1, Rego: atkRule("a-gen1")}},
		{Name: "b", UID: "b", Generation: 2, Rego: broken, Fallback: &Object{Generation: 1,
			Rego: "package credgate.admission\n\ndeny contains {\"rule\": \"b\", \"message\": \"m\"} if {\n\tsome c in input.credentialz\n\tc.name == \"x\"\n}\n"}},
	}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	err := z2Reload(t, w)
	t.Logf("err=%v loaded=%v statuses=%+v", err, w.Loaded(), w.ObjectStatuses())
	if w.Loaded() == nil && !atkDenies(t, w.Engine, "a-gen1") {
		t.Errorf("b's stale status.served drops a's good one on a fresh replica (ready, a-gen1 not enforced)")
	}
}

// B3: phase 2 puts a set-aside object's fallback into the trial without trying it: when the
// fallback fails too, every object tried after it is set aside (not served: on a fresh
// replica, not at all), though healthy; the replica is ready.
func TestAttack2Phase2UntestedFallbackPoisons(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "helpers.rego", "package team.helpers\n\npick(x) := 1 if x > 0\n\npick(x) := 2 if x > 1\n")
	w, _ := newTestWatcher(t, dir) // fresh replica, e.g. the rollout that applied the helpers change
	uses := func(id string) string {
		return "package credgate.admission\n\nimport data.team.helpers\n\ndeny contains {\"rule\": \"" + id + "\", \"message\": sprintf(\"%v\", [helpers.pick(5)])} if true\n"
	}
	objs := []Object{
		{Name: "n", UID: "n", Generation: 2, Rego: uses("n2"), Fallback: &Object{Generation: 1, Rego: uses("n1")}},
		{Name: "z-healthy", UID: "m", Generation: 1, Rego: atkRule("healthy-rule")},
	}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	err := z2Reload(t, w)
	t.Logf("err=%v loaded=%v statuses=%+v", err, w.Loaded(), w.ObjectStatuses())
	if w.Loaded() == nil && !atkDenies(t, w.Engine, "healthy-rule") {
		t.Errorf("ready, yet the healthy z-healthy is not served (status %+v)", w.ObjectStatuses()["z-healthy"])
	}
}

// B4: an object set aside for a canary error (its generation 1 serving, ServedObject set)
// loses ServedObject when a failure that is no object's comes first (a broken policy file):
// the status writer then clears status.served while generation 1 is still served, and the
// next replica to start serves nothing of it.
func TestAttack2WholeFailureErasesServed(t *testing.T) {
	dir := t.TempDir()
	w, _ := newTestWatcher(t, dir)
	objs := []Object{{Name: "a", UID: "a", Generation: 1, Rego: atkRule("a-gen1")}}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	if err := z2Reload(t, w); err != nil {
		t.Fatal(err)
	}
	objs = []Object{{Name: "a", UID: "a", Generation: 2, Rego: "package credgate.admission\n\nlevel := 1 if true\n\nlevel := 2 if true\n\ndeny contains {\"rule\": \"a2\", \"message\": \"m\"} if level > 0\n"}}
	_ = z2Reload(t, w)
	if st := w.ObjectStatuses()["a"]; st.ServedObject == nil || st.ServedObject.Generation != 1 {
		t.Fatalf("setup: status %+v, want generation 1 served", st)
	}
	writeFile(t, dir, "typo.rego", "package team.x\n\nf if {\n") // the operator's typo
	err := z2Reload(t, w)
	st := w.ObjectStatuses()["a"]
	t.Logf("err=%v status of a=%+v; a-gen1 enforced=%v", err, st, atkDenies(t, w.Engine, "a-gen1"))
	if atkDenies(t, w.Engine, "a-gen1") && st.ServedObject == nil {
		t.Errorf("generation 1 of a is served, but its status no longer says so (ServedObject nil: status.served is cleared)")
	}
}

// B5: an object may call another object's functions (data.credgate.object.<name>); deleting
// the callee makes the caller (unchanged) fail to compile: a failure located in no changed
// object, so the whole revision is frozen. The deleted object stays enforced with no status
// anywhere, and no other change (a new object) is served.
func TestAttack2DeletedObjectPinned(t *testing.T) {
	w, _ := newTestWatcher(t, "")
	y := Object{Name: "y", UID: "y", Generation: 1, Rego: "package credgate.admission\n\nblocked(u) if u == \"mallory\"\n\ndeny contains {\"rule\": \"y-rule\", \"message\": \"m\"} if true\n"}
	x := Object{Name: "x", UID: "x", Generation: 1, Rego: "package credgate.admission\n\nimport data.credgate.object.y\n\ndeny contains {\"rule\": \"x-rule\", \"message\": \"m\"} if y.blocked(input.request.userInfo.username)\n"}
	objs := []Object{x, y}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	if err := z2Reload(t, w); err != nil {
		t.Fatalf("setup: %v", err)
	}
	if !atkDenies(t, w.Engine, "y-rule") {
		t.Fatal("setup: y not served")
	}
	objs = []Object{x, {Name: "z", UID: "z", Generation: 1, Rego: atkRule("z-rule")}} // y deleted, z created
	err := z2Reload(t, w)
	t.Logf("err=%v statuses=%+v", err, w.ObjectStatuses())
	if atkDenies(t, w.Engine, "y-rule") || !atkDenies(t, w.Engine, "z-rule") {
		t.Errorf("deleted y still enforced=%v, new z enforced=%v", atkDenies(t, w.Engine, "y-rule"), atkDenies(t, w.Engine, "z-rule"))
	}
}

// B6: Source.Revision is ambiguous (names and texts joined with NUL, no lengths): a policy
// author's object text that appends "\x00user/<file>\x00<text>" has the id of the revision
// with that policy file added. The object fails to parse and its failure is memoised under
// that id; when the operator later adds the file, the revision is never tried: the file is
// silently not served (no error returned, nothing logged).
func TestAttack2RevisionCollisionPoisonsMemo(t *testing.T) {
	dir := t.TempDir()
	w, logs := newTestWatcher(t, dir)
	plain := atkRule("a1")
	fix := "package credgate.admission\n\ndeny contains {\"rule\": \"operator-fix\", \"message\": \"m\"} if true\n"
	objs := []Object{{Name: "a", UID: "a", Generation: 1, Rego: plain}}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	if err := z2Reload(t, w); err != nil {
		t.Fatal(err)
	}
	objs = []Object{{Name: "a", UID: "a", Generation: 2, Rego: plain + "\x00user/fix.rego\x00" + fix}}
	_ = z2Reload(t, w) // refused: illegal null character; memoised
	n := len(logs.lines)
	writeFile(t, dir, "fix.rego", fix) // later, the operator's fix
	err := z2Reload(t, w)
	t.Logf("reload after the operator's file: err=%v, new log lines %d: %q", err, len(logs.lines)-n, logs.lines[n:])
	if !atkDenies(t, w.Engine, "operator-fix") {
		t.Errorf("the operator's new policy file is not served (err=%v), silently", err)
	}
}

// B7: cost. K objects whose canary times out once cost K timeouts; the verdicts stand
// (retryFailedCanary), so the next reloads run none of them again, and the replica is ready.
func TestAttack2TimeoutCost(t *testing.T) {
	w, logs := newTestWatcher(t, "")
	w.Engine.Timeout = 150 * time.Millisecond
	var objs []Object
	for i := range 6 {
		objs = append(objs, Object{Name: fmt.Sprintf("slow%d", i), UID: fmt.Sprint(i), Generation: 1,
			Rego: "package credgate.admission\n\ndeny contains {\"rule\": \"slow\", \"message\": \"m\"} if {\n\tcount([x | some x in numbers.range(1, 100000000); x % 7 == 0]) < 0\n}\n"})
	}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	_ = z2Reload(t, w)
	if err := w.Loaded(); err != nil {
		t.Errorf("slow objects keep the replica from being ready: %v", err)
	}
	for _, o := range objs {
		if st := w.ObjectStatuses()[o.Name]; st.Reason != "EvaluationError" {
			t.Errorf("%s: %+v, want EvaluationError", o.Name, st)
		}
	}
	// Each slow object costs one timeout, once: the next reloads do not run them again.
	n := len(logs.lines)
	_ = z2Reload(t, w)
	_ = z2Reload(t, w)
	if got := len(logs.lines) - n; got != 0 {
		t.Errorf("reloads with nothing changed ran the slow objects again: %d log lines", got)
	}
}

// B6b: the same ambiguity through try's id equality: with the object's colliding generation
// current, the operator deleting the policy file yields the id served, so try "serves" it
// without compiling: the deleted file stays enforced, and the object's generation that does
// not even parse is reported served (w.serving holds it; the engine does not).
func TestAttack2RevisionCollisionPinsDeletedFile(t *testing.T) {
	dir := t.TempDir()
	fix := "package credgate.admission\n\ndeny contains {\"rule\": \"operator-file\", \"message\": \"m\"} if true\n"
	writeFile(t, dir, "fix.rego", fix)
	w, _ := newTestWatcher(t, dir)
	plain := atkRule("zz1")
	objs := []Object{{Name: "zz", UID: "z", Generation: 1, Rego: plain}}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	if err := z2Reload(t, w); err != nil {
		t.Fatal(err)
	}
	objs = []Object{{Name: "zz", UID: "z", Generation: 2, Rego: plain + "\x00user/fix.rego\x00" + fix}}
	_ = z2Reload(t, w) // refused: illegal null character
	if err := os.Remove(filepath.Join(dir, "fix.rego")); err != nil {
		t.Fatal(err)
	}
	err := z2Reload(t, w)
	st := w.ObjectStatuses()["zz"]
	t.Logf("after the operator deleted fix.rego: err=%v, operator-file enforced=%v, status of zz=%+v",
		err, atkDenies(t, w.Engine, "operator-file"), st)
	if atkDenies(t, w.Engine, "operator-file") || st.Served {
		t.Errorf("the deleted file stays enforced (%v); zz generation 2, which does not parse, is reported served (%v)",
			atkDenies(t, w.Engine, "operator-file"), st.Served)
	}
}

// R1: Reload races with the readers (run with -race).
func TestAttack2ReloadRaces(t *testing.T) {
	w, _ := newTestWatcher(t, "")
	var gen int64 = 1
	w.Objects = func(context.Context) ([]Object, error) {
		g := gen
		return []Object{{Name: "a", UID: "a", Generation: g, Rego: atkRule(fmt.Sprint("r", g%3)), Fallback: &Object{Generation: 0, Rego: atkRule("f")}},
			{Name: "b", UID: "b", Generation: g, Rego: "package credgate.admission\n\ndeny contains x if {\n", Fallback: &Object{Generation: g - 1, Rego: atkRule("b")}}}, nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 15 {
			gen++
			_, _ = w.Reload(context.Background())
		}
	}()
	ch := w.Changed()
	for {
		select {
		case <-done:
			// Read while it reloaded, the watcher still ends where the last reload leaves it:
			// a at its last generation, b set aside with its fallback serving.
			a, b := w.ObjectStatuses()["a"], w.ObjectStatuses()["b"]
			if !a.Served || a.Generation != gen || b.Served || b.Reason != "CompileError" {
				t.Errorf("after the reloads: a %+v, b %+v", a, b)
			}
			if !atkDenies(t, w.Engine, fmt.Sprint("r", gen%3)) || !atkDenies(t, w.Engine, "b") {
				t.Error("the last generation of a, or the fallback of b, is not served")
			}
			return
		case <-ch:
		default:
		}
		for _, st := range w.ObjectStatuses() {
			if st.ServedObject != nil {
				_ = st.ServedObject.Rego + fmt.Sprint(st.ServedObject.Enforcement, st.Rules)
			}
		}
		_ = w.Loaded()
		_ = atkDenies(t, w.Engine, "x")
	}
}

// B7c: many broken objects (more than the whole-revision memo, maxFailures, holds): a reload
// with nothing changed compiles none of them again.
func TestAttack2MemoThrash(t *testing.T) {
	w, logs := newTestWatcher(t, "")
	var objs []Object
	for i := range maxFailures + 16 {
		objs = append(objs, Object{Name: fmt.Sprintf("b%03d", i), UID: fmt.Sprint(i), Generation: 1,
			Rego: "package credgate.admission\n\nlevel := x if { x := 1 }\n\nlevel := x if { x := 2 }\n\ndeny contains level if true\n"})
	}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	start := time.Now()
	_ = z2Reload(t, w)
	t.Logf("first reload %v", time.Since(start))
	n := len(logs.lines)
	start = time.Now()
	_ = z2Reload(t, w)
	took := time.Since(start)
	t.Logf("second reload, nothing changed: %v, %d new log lines", took, len(logs.lines)-n)
	if len(logs.lines) > n {
		t.Errorf("with many broken objects every reload (every 2s) recompiles (%v)", took)
	}
}

// B1b: the same with a mere addition (nothing deleted): the new object is set aside, blamed.
func TestAttack2TenantBlocksNewObject(t *testing.T) {
	w, _ := newTestWatcher(t, "")
	scoped := Object{Name: "team-a-tiers", UID: "s", Generation: 1,
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}},
		Rego:              "package credgate.admission\n\ntier := \"gold\" if input.object.metadata.labels.tier == \"gold\"\n\ntier := \"free\" if input.object.metadata.annotations.plan == \"free\"\n\ndeny contains {\"rule\": \"gold-only\", \"message\": \"m\"} if tier == \"free\"\n"}
	objs := []Object{scoped}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	if err := z2Reload(t, w); err != nil {
		t.Fatal(err)
	}
	z2TenantPod(t, w.Engine, "team-b", map[string]string{"team": "b"}, `"labels":{"tier":"gold"},"annotations":{"plan":"free"}`)
	objs = []Object{scoped, {Name: "new", UID: "n", Generation: 1, Rego: atkRule("new-rule")}}
	err := z2Reload(t, w)
	t.Logf("err=%v status of new=%+v loaded=%v", err, w.ObjectStatuses()["new"], w.Loaded())
	if !atkDenies(t, w.Engine, "new-rule") {
		t.Errorf("a new, healthy object is set aside because of a tenant's input")
	}
}

// Failed attacks (evidence).

func TestAttack2FailedOddObjects(t *testing.T) {
	w, _ := newTestWatcher(t, "")
	objs := []Object{
		{Name: "helpers-only", UID: "h", Generation: 1, Rego: "package credgate.admission\n\nf(x) := x + 1\n"},
		{Name: "pkg-only", UID: "p", Generation: 1, Rego: "package credgate.admission\n"},
		{Name: "comment", UID: "c", Generation: 1, Rego: "# nothing\n"},
		{Name: "empty-sel", UID: "e", Generation: 1, Rego: atkRule("empty-sel"), NamespaceSelector: &metav1.LabelSelector{}, Enforcement: map[string]Action{"": ActionWarn}},
		// a fallback newer than the current generation is ignored
		{Name: "future", UID: "f", Generation: 2, Rego: "package credgate.admission\n\ndeny contains x if {\n", Fallback: &Object{Generation: 5, Rego: atkRule("future-fallback")}},
		// a fallback whose selector is invalid
		{Name: "badsel", UID: "b", Generation: 2, Rego: "package credgate.admission\n\ndeny contains x if {\n", Fallback: &Object{Generation: 1, Rego: atkRule("badsel"),
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"k": "bad value!"}}}},
		{Name: "warn-only", UID: "wo", Generation: 1, Rego: "package credgate.admission\n\nwarn contains \"w\" if true\n"},
	}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	err := z2Reload(t, w)
	for _, n := range []string{"helpers-only", "pkg-only", "comment", "empty-sel", "future", "badsel", "warn-only"} {
		t.Logf("%s: %+v", n, w.ObjectStatuses()[n])
	}
	t.Logf("err=%v loaded=%v empty-sel denies=%v future-fallback=%v", err, w.Loaded(), atkDenies(t, w.Engine, "empty-sel"), atkDenies(t, w.Engine, "future-fallback"))
	if atkDenies(t, w.Engine, "future-fallback") {
		t.Error("a fallback newer than the current generation was served")
	}
}
