package policies

import (
	"maps"
	"slices"

	"context"
	"strings"
	"testing"

	"github.com/credgate/credgate/api/v1alpha1"

	"github.com/open-policy-agent/opa/v1/ast"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// objectInput is a minimal input document: a pod in namespace ns with labels nsLabels.
func objectInput(t *testing.T, ns string, nsLabels map[string]string) ast.Value {
	t.Helper()
	in := &Input{Operation: "CREATE", Namespace: ns, NamespaceLabels: nsLabels, Name: "p", User: "alice",
		Version: "v1", Kind: "Pod", Object: []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}}`)}
	v, err := in.Value()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

const objectRego = `package credgate.admission

deny contains {"rule": "no-alice", "message": "alice may not run pods"} if input.request.userInfo.username == "alice"

warn contains {"rule": "friday", "message": "it is friday"} if input.request.operation == "CREATE"
`

func compileObjectsOf(t *testing.T, objs ...Object) *Revision {
	t.Helper()
	src, err := Merge(Builtin(), ObjectsSource(objs))
	if err != nil {
		t.Fatal(err)
	}
	rev, err := Compile(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}

// TestObjectViolationsNameTheirPolicy: each object's violations carry its name, and two
// objects with the same rules each report theirs.
func TestObjectViolationsNameTheirPolicy(t *testing.T) {
	rev := compileObjectsOf(t, Object{Name: "a", Rego: objectRego}, Object{Name: "b.team", Rego: objectRego})
	res, err := rev.Evaluate(context.Background(), objectInput(t, "ns", nil))
	if err != nil {
		t.Fatal(err)
	}
	var denied, warned []string
	for _, v := range res.Deny {
		denied = append(denied, v.Rule+"@"+v.Policy)
	}
	for _, v := range res.Warn {
		warned = append(warned, v.Rule+"@"+v.Policy)
	}
	if got, want := strings.Join(denied, " "), "no-alice@a no-alice@b.team"; got != want {
		t.Errorf("deny = %s, want %s", got, want)
	}
	if got, want := strings.Join(warned, " "), "friday@a friday@b.team"; got != want {
		t.Errorf("warn = %s, want %s", got, want)
	}
}

// TestObjectNamespaceSelector: an object with a namespace selector decides only in the
// namespaces it selects.
func TestObjectNamespaceSelector(t *testing.T) {
	rev := compileObjectsOf(t, Object{Name: "prod-only", Rego: objectRego,
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}})
	for _, tc := range []struct {
		labels map[string]string
		want   int
	}{{map[string]string{"env": "prod"}, 1}, {map[string]string{"env": "dev"}, 0}, {nil, 0}} {
		res, err := rev.Evaluate(context.Background(), objectInput(t, "ns", tc.labels))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Deny) != tc.want || len(res.Warn) != tc.want {
			t.Errorf("namespace labels %v: %d denials and %d warnings, want %d of each", tc.labels, len(res.Deny), len(res.Warn), tc.want)
		}
	}
}

// TestObjectEnforcement: an object's enforcement decides its own violations' action, over the
// operator's, and does not touch another object's violations of the same rule id.
func TestObjectEnforcement(t *testing.T) {
	rev := compileObjectsOf(t,
		Object{Name: "lenient", Rego: objectRego, Enforcement: map[string]Action{"no-alice": ActionAudit, "friday": ActionDeny}},
		Object{Name: "strict", Rego: objectRego})
	res, err := rev.Evaluate(context.Background(), objectInput(t, "ns", nil))
	if err != nil {
		t.Fatal(err)
	}
	c := Enforcement{"no-alice": ActionWarn}.Classify(res)
	got := func(vs []Violation) string {
		var s []string
		for _, v := range vs {
			s = append(s, v.Rule+"@"+v.Policy)
		}
		return strings.Join(s, " ")
	}
	if g, w := got(c.Deny), "friday@lenient"; g != w {
		t.Errorf("deny = %q, want %q", g, w)
	}
	if g, w := got(c.Warn), "no-alice@strict friday@strict"; g != w {
		t.Errorf("warn = %q, want %q (the operator's enforcement for the object that sets none)", g, w)
	}
	if g, w := got(c.Audit), "no-alice@lenient"; g != w {
		t.Errorf("audit = %q, want %q", g, w)
	}
}

// TestObjectErrorsAreBlamed: an object that declares another package, does not parse, or has
// a bad selector fails the revision with an error that names its file, and the message kept
// for its status gives the line.
func TestObjectErrorsAreBlamed(t *testing.T) {
	for _, tc := range []struct {
		name string
		obj  Object
		want string
	}{
		{"package", Object{Name: "other", Rego: "package team.rules\n\ndeny contains 1 if true\n"},
			"line 1: rego_compile_error: a CredentialPolicy declares package credgate.admission, not team.rules"},
		{"reserved", Object{Name: "sneaky", Rego: "package credgate.builtin.static_credentials\n\ndeny contains 1 if true\n"},
			"a CredentialPolicy declares package credgate.admission, not credgate.builtin.static_credentials"},
		{"parse", Object{Name: "broken", Rego: "package credgate.admission\n\ndeny contains x if {\n"},
			"rego_parse_error"},
		{"compile", Object{Name: "unsafe", Rego: "package credgate.admission\n\ndeny contains x if y == 1\n"},
			"line 3: rego_unsafe_var_error"},
		{"selector", Object{Name: "sel", Rego: objectRego, NamespaceSelector: &metav1.LabelSelector{
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "env", Operator: "Sometimes"}}}},
			`"Sometimes" is not a valid label selector operator`},
		{"action", Object{Name: "act", Rego: objectRego, Enforcement: map[string]Action{"no-alice": "block"}},
			`enforcement of no-alice is "block": the action must be deny, warn or audit`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good := Object{Name: "good", Rego: objectRego}
			src, err := Merge(Builtin(), ObjectsSource([]Object{good, tc.obj}))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Compile(context.Background(), src)
			if err == nil {
				t.Fatal("compiled")
			}
			if msg := objectMessage(err, good.Name); msg != notLocated {
				t.Fatalf("the healthy object is blamed too: %q (%v)", msg, err)
			}
			if msg := objectMessage(err, tc.obj.Name); !strings.Contains(msg, tc.want) {
				t.Errorf("message %q, want it to contain %q", msg, tc.want)
			}
		})
	}
}

// TestObjectsChangeTheRevision: the revision id covers each object's module, enforcement and
// selector, so that no decision taken under one is reused under another.
func TestObjectsChangeTheRevision(t *testing.T) {
	base := Object{Name: "p", Rego: objectRego}
	ids := map[string]string{}
	for name, o := range map[string]Object{
		"base":        base,
		"rego":        {Name: "p", Rego: objectRego + "\n"},
		"enforcement": {Name: "p", Rego: objectRego, Enforcement: map[string]Action{"friday": ActionDeny}},
		"selector":    {Name: "p", Rego: objectRego, NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"a": "b"}}},
		"name":        {Name: "q", Rego: objectRego},
	} {
		id := ObjectsSource([]Object{o}).Revision()
		for other, oid := range ids {
			if oid == id {
				t.Errorf("objects %s and %s give the same revision", name, other)
			}
		}
		ids[name] = id
	}
}

// TestWatcherObjects: the watcher serves policy objects as they change; one that breaks is set
// aside with its last good generation still serving, and says why in its status, while the
// other objects' changes are served; fixed, it is served again; deleted, it is gone.
func TestWatcherObjects(t *testing.T) {
	w, _ := newTestWatcher(t, "")
	var objs []Object
	w.Objects = func(context.Context) ([]Object, error) { return slices.Clone(objs), nil }
	if err := w.Loaded(); err == nil {
		t.Error("Loaded before any reload")
	}
	denies := func(rule string) bool {
		t.Helper()
		res, err := w.Engine.Evaluate(t.Context(), objectInput(t, "ns", nil))
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
	reload := func() {
		t.Helper()
		if _, err := w.Reload(t.Context()); err != nil {
			t.Logf("reload: %v", err)
		}
	}
	status := func(name string) ObjectStatus { return w.ObjectStatuses()[name] }
	rule := func(id string) string {
		return "package credgate.admission\n\ndeny contains {\"rule\": \"" + id + "\", \"message\": \"no\"} if true\n"
	}

	objs = []Object{{Name: "a", UID: "u1", Generation: 1, Rego: rule("rule-a1")}, {Name: "b", UID: "u2", Generation: 1, Rego: rule("rule-b1")}}
	reload()
	if err := w.Loaded(); err != nil {
		t.Error(err)
	}
	if !denies("rule-a1") || !denies("rule-b1") {
		t.Fatal("the objects are not served")
	}
	if st := status("a"); !st.Served || st.Reason != v1alpha1.ReasonServing || st.Generation != 1 || !slices.Equal(st.Rules, []string{"rule-a1"}) {
		t.Errorf("status of a = %+v, want served, rules [rule-a1]", st)
	}

	// a breaks; b changes: b's change is served, a's last good generation keeps refusing.
	objs = []Object{{Name: "a", UID: "u1", Generation: 2, Rego: "package credgate.admission\n\ndeny contains x if {\n"},
		{Name: "b", UID: "u2", Generation: 2, Rego: rule("rule-b2")}}
	reload()
	if !denies("rule-a1") {
		t.Error("the last good generation of a broken object no longer refuses")
	}
	if !denies("rule-b2") || denies("rule-b1") {
		t.Error("b's new generation is not served beside the broken a")
	}
	if st := status("a"); st.Served || st.Reason != v1alpha1.ReasonCompileError || !strings.Contains(st.Message, "rego_parse_error") || st.Generation != 2 {
		t.Errorf("status of broken a = %+v, want CompileError with the parse error", st)
	}
	if st := status("b"); !st.Served {
		t.Errorf("status of b = %+v, want served", st)
	}
	served := w.Engine.Current().ID()
	reload() // nothing changed: nothing compiled again, nothing served anew
	if w.Engine.Current().ID() != served {
		t.Error("an unchanged reload served a new revision")
	}

	// A new object that never compiled is not served at all, and the others are.
	objs = append(objs, Object{Name: "c", UID: "u3", Generation: 1, Rego: "package other\n\ndeny contains 1 if true\n"})
	reload()
	if st := status("c"); st.Served || st.Reason != v1alpha1.ReasonCompileError || !strings.Contains(st.Message, "line 1:") {
		t.Errorf("status of c = %+v, want CompileError at line 1", st)
	}
	if !denies("rule-a1") || !denies("rule-b2") {
		t.Error("a broken new object stopped the others")
	}

	// Fixed, a is served again; deleted, b and c are gone.
	objs = []Object{{Name: "a", UID: "u1", Generation: 3, Rego: rule("rule-a3")}}
	reload()
	if denies("rule-a1") || !denies("rule-a3") || denies("rule-b2") {
		t.Error("the fixed a is not served, or the deleted b still refuses")
	}
	if st := w.ObjectStatuses(); len(st) != 1 || !st["a"].Served || st["a"].Generation != 3 {
		t.Errorf("statuses = %+v, want a served at generation 3 only", st)
	}

	// Deleted and created again under the same name, it is a new object: its broken first
	// generation does not bring back the old one's.
	objs = []Object{{Name: "a", UID: "u9", Generation: 1, Rego: "package credgate.admission\n\ndeny contains x if {\n"}}
	reload()
	if denies("rule-a3") {
		t.Error("a deleted object's last good generation served for the new object of its name")
	}
}

// TestWatcherObjectsRevisionFailure: a failure no object is blamed for (a broken file of the
// policy directory) keeps the previous revision, and the objects not in it say why.
func TestWatcherObjectsRevisionFailure(t *testing.T) {
	dir := t.TempDir()
	w, _ := newTestWatcher(t, dir)
	writeFile(t, dir, "broken.rego", "package credgate.admission\n\ndeny contains x if {\n")
	w.Objects = func(context.Context) ([]Object, error) {
		return []Object{{Name: "a", UID: "u", Generation: 1, Rego: objectRego}}, nil
	}
	if _, err := w.Reload(t.Context()); err == nil {
		t.Fatal("a broken policy file was served")
	}
	if st := w.ObjectStatuses()["a"]; st.Served || st.Reason != v1alpha1.ReasonRevisionFailed || !strings.Contains(st.Message, "credgate's log has the details") {
		t.Errorf("status = %+v, want RevisionFailed pointing at the log", st)
	}
	if err := w.Loaded(); err == nil {
		t.Error("ready while no object could be placed")
	}
}

// TestObjectFiles: a CredentialPolicy saved as a file of a policy directory is served as the
// cluster's object would be (its violations name it, its enforcement applies), and the Rego
// tests beside it test its rules in credgate.admission, as they test a .rego file's.
func TestObjectFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "team.yaml", `apiVersion: credgate.dev/v1alpha1
kind: CredentialPolicy
metadata:
  name: team
spec:
  enforcement: {friday: deny}
  rego: |
    package credgate.admission

    deny contains {"rule": "no-alice", "message": "alice may not run pods"} if input.request.userInfo.username == "alice"

    warn contains {"rule": "friday", "message": "it is friday"} if input.request.operation == "CREATE"
`)
	writeFile(t, dir, "team_test.rego", `package credgate.admission_test

import data.credgate.admission

test_alice_refused if {
	some v in admission.deny with input as {"request": {"userInfo": {"username": "alice"}}}
	v.rule == "no-alice"
}
`)
	writeFile(t, dir, "data.yaml", "teams: [a, b]\n")
	src, err := LoadDirs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := src.Objects["team"]; !ok || src.Modules[ObjectFile("team")] == "" || src.Data["teams"] == nil {
		t.Fatalf("loaded objects %v, modules %v, data %v: want the CredentialPolicy as an object and data.yaml as data",
			src.Objects, slices.Collect(maps.Keys(src.Modules)), src.Data)
	}
	rep, err := RunTests(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	ran := false
	for _, r := range rep.Results {
		if r.Name == "test_alice_refused" {
			ran = r.Pass()
		}
	}
	if !ran || rep.Failed() > 0 {
		t.Errorf("the test of the CredentialPolicy file did not run and pass (%d failed)", rep.Failed())
	}
	rev, err := Compile(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	res, err := rev.Evaluate(t.Context(), objectInput(t, "ns", nil))
	if err != nil {
		t.Fatal(err)
	}
	c := Enforcement{}.Classify(res)
	if len(c.Deny) != 2 || c.Deny[0].Policy != "team" || c.Deny[1].Rule != "friday" {
		t.Errorf("deny = %+v, want no-alice and friday (its enforcement) of policy team", c.Deny)
	}

	for name, text := range map[string]string{
		"noname.yaml": "apiVersion: credgate.dev/v1alpha1\nkind: CredentialPolicy\nspec: {rego: x}\n",
		"norego.yaml": "apiVersion: credgate.dev/v1alpha1\nkind: CredentialPolicy\nmetadata: {name: a}\n",
		"typo.yaml":   "apiVersion: credgate.dev/v1alpha1\nkind: CredentialPolicy\nmetadata: {name: a}\nspec: {rgo: x}\n",
		"upper.yaml":  "apiVersion: credgate.dev/v1alpha1\nkind: CredentialPolicy\nmetadata: {name: A}\nspec: {rego: x}\n",
	} {
		d := t.TempDir()
		writeFile(t, d, name, text)
		if _, err := LoadDir(d); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v, want an error naming the file", name, err)
		}
	}
}

// TestObjectsTypeChecked: a policy object reading a part of the input the schema does not
// have is refused, blamed on it, with the line — it would never refuse anything — while a
// policy file doing the same still compiles, as it always did.
func TestObjectsTypeChecked(t *testing.T) {
	typo := "package credgate.admission\n\ndeny contains {\"rule\": \"r\", \"message\": \"m\"} if {\n\tsome c in input.credentialz\n\tc.name == \"x\"\n}\n"
	src, err := Merge(Builtin(), ObjectsSource([]Object{{Name: "typo", Rego: typo}}))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(t.Context(), src)
	if err == nil {
		t.Fatal("an object reading input.credentialz compiled")
	}
	if msg := objectMessage(err, "typo"); !strings.Contains(msg, "line 4: rego_type_error: input.credentialz is not in the input schema") {
		t.Errorf("error %q, want it blamed on typo at line 4", msg)
	}
	file, err := Merge(Builtin(), Source{Modules: map[string]string{"user/typo.rego": typo}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Compile(t.Context(), file); err != nil {
		t.Errorf("a policy file reading input.credentialz: %v, want it compiled as before", err)
	}
}

// TestObjectSelectorContainsErrors: a policy object is evaluated only where its selector
// applies, so its errors (here a function giving two values for one name) fail admissions in
// its namespaces only.
func TestObjectSelectorContainsErrors(t *testing.T) {
	rego := `package credgate.admission

level(name) := 1 if name == "boom"

level(name) := 2 if name == "boom"

deny contains {"rule": "lvl", "message": "m"} if level(input.request.name) > 0
`
	rev := compileObjectsOf(t, Object{Name: "team-a-only", Rego: rego,
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": "a"}}})
	in := func(team string) ast.Value {
		in := &Input{Operation: "CREATE", Namespace: "ns", NamespaceLabels: map[string]string{"team": team}, Name: "boom",
			Version: "v1", Kind: "Pod", Object: []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"boom"},"spec":{"containers":[{"name":"c","image":"i"}]}}`)}
		v, err := in.Value()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if _, err := rev.Evaluate(t.Context(), in("b")); err != nil {
		t.Errorf("a namespace the object does not select: %v", err)
	}
	if _, err := rev.Evaluate(t.Context(), in("a")); err == nil || !strings.Contains(err.Error(), "policy team-a-only") {
		t.Errorf("the object's namespace: err = %v, want its conflict error", err)
	}
	// The canary evaluates it wherever: its errors are found before it is served anywhere.
	if err := rev.Canary(t.Context(), []CanaryInput{{Name: "x", Value: in("b")}}, 0); err == nil {
		t.Error("the canary ignored the error of an object on a namespace it does not select")
	}
}

// TestWatcherObjectFallback: a replica that starts while an object's current generation is
// broken serves the generation its status says was served, and says so.
func TestWatcherObjectFallback(t *testing.T) {
	w, _ := newTestWatcher(t, "")
	good := "package credgate.admission\n\ndeny contains {\"rule\": \"gen-1\", \"message\": \"no\"} if true\n"
	w.Objects = func(context.Context) ([]Object, error) {
		return []Object{{Name: "a", UID: "u", Generation: 2, Rego: "package credgate.admission\n\ndeny contains x if {\n",
			Fallback: &Object{Name: "a", UID: "u", Generation: 1, Rego: good}}}, nil
	}
	if _, err := w.Reload(t.Context()); err != nil {
		t.Logf("reload: %v", err)
	}
	res, err := w.Engine.Evaluate(t.Context(), objectInput(t, "ns", nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Deny) != 1 || res.Deny[0].Rule != "gen-1" {
		t.Errorf("deny = %+v, want the served generation's gen-1", res.Deny)
	}
	st := w.ObjectStatuses()["a"]
	if st.Served || st.Reason != v1alpha1.ReasonCompileError || st.ServedObject == nil || st.ServedObject.Generation != 1 {
		t.Errorf("status = %+v, want CompileError with generation 1 served", st)
	}
	if err := w.Loaded(); err != nil {
		t.Error(err)
	}
}
