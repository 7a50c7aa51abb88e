package policies

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// unseeded is rev evaluating every rule in every evaluation: the reference a seeded
// evaluation must equal.
func unseeded(rev *Revision) *Revision {
	r := *rev
	r.sets, r.seedsTargets = nil, false
	return &r
}

// seededRefs lists the refs rev seeds, as text.
func seededRefs(rev *Revision) []string {
	if rev.sets == nil {
		return nil
	}
	var out []string
	for _, r := range rev.sets.refs {
		out = append(out, r.String())
	}
	return out
}

// TestCredentialSetRulesBuiltin: the built-in rules' credential-only parts are seeded, and
// nothing that reads the pod.
func TestCredentialSetRulesBuiltin(t *testing.T) {
	rev := builtinWith(t, "")
	want := []string{
		"data.credgate.builtin.conflicting_env.env_setters",
		"data.credgate.builtin.conflicting_mount.between_credentials",
		"data.credgate.builtin.conflicting_mount.with_files",
		"data.credgate.builtin.multiple_cloud_identities.credential_identities",
		"data.credgate.builtin.multiple_cloud_identities.identity_variables",
		"data.credgate.builtin.service_account_not_allowed.restricted",
		"data.credgate.lib.credential_env",
	}
	if got := seededRefs(rev); !slices.Equal(got, want) {
		t.Errorf("seeded:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// One evaluation of the example pod finds every value (a rule looked up by key only, never
	// whole, would have none kept).
	in, err := exampleInput(t).Value()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rev.Evaluate(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	kept := rev.sets.begin(in).kept
	if kept == nil {
		t.Fatal("nothing kept for the example pod's credentials")
	}
	for i, r := range rev.sets.refs {
		if !kept.known[i] {
			t.Errorf("no value kept for %s", r)
		}
	}
}

// TestCredentialSetRulesUser: a user rule is seeded only when it, and all it reaches, reads
// nothing but input.credentials, deterministically and without `with`; each other way of
// reaching further is refused.
func TestCredentialSetRulesUser(t *testing.T) {
	for _, tt := range []struct {
		name, rule string
		seeded     bool
	}{
		{"the credentials", `x := count(input.credentials)`, true},
		{"a credential's member", `x := {c.name | some c in input.credentials}`, true},
		{"a function of constants", "f(a) := a + 1\n\nx := f(count(input.credentials))", true},
		{"a partial set", `x contains c.name if some c in input.credentials`, true},
		{"a partial object", `x[c.name] := c.type if some c in input.credentials`, true},
		{"a function that reads the pod", "f(a) := a if input.pod.spec\n\nx := f(count(input.credentials))", false},
		{"a rule that reads the pod", "y := input.pod.metadata.name\n\nx := [y, count(input.credentials)]", false},
		{"the input whole", `x := count(object.get(input, "credentials", []))`, false},
		{"the namespace", `x := [input.namespace.name, count(input.credentials)]`, false},
		{"the clock", `x := [time.now_ns(), count(input.credentials)]`, false},
		{"a with", "x := n if {\n\tn := count(input.credentials) with input.credentials as []\n}", false},
		{"a package's rules", "x := [count(input.credentials), is_object(data.credgate.lib)]", false},
		{"a ground ref head", `x.y := count(input.credentials)`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rev := builtinWith(t, "package credgate.admission\n\nimport data.credgate.lib\n\n"+tt.rule+
				"\n\ndeny contains lib.violation(\"t\", input.pod.metadata.name, sprintf(\"%v\", [x]))\n")
			got := slices.Contains(seededRefs(rev), "data.credgate.admission.x")
			if got != tt.seeded {
				t.Errorf("data.credgate.admission.x seeded: %v, want %v (seeded: %v)", got, tt.seeded, seededRefs(rev))
			}
		})
	}
}

// inputCollector keeps every distinct input document an evaluation sees: the input of each
// `with input as` of the built-in rules' tests.
type inputCollector struct{ inputs ast.Set }

func (c *inputCollector) Enabled() bool { return true }

func (c *inputCollector) Config() topdown.TraceConfig { return topdown.TraceConfig{} }

func (c *inputCollector) TraceEvent(evt topdown.Event) {
	in := evt.Input()
	if in == nil {
		return
	}
	if o, ok := in.Value.(ast.Object); ok && o.Get(credentialsKey) != nil && o.Get(ast.StringTerm("pod")) != nil {
		c.inputs.Add(in)
	}
}

// builtinTestInputs returns the inputs the built-in rules' Rego tests evaluate the rules on:
// every conflict and non-conflict they know.
func builtinTestInputs(t *testing.T) []ast.Value {
	t.Helper()
	src := Builtin()
	modules := map[string]*ast.Module{}
	for name, text := range maps.All(src.Modules) {
		modules[name] = ast.MustParseModuleWithOpts(text, parserOptions)
	}
	for name, text := range maps.All(src.Tests) {
		modules[name] = ast.MustParseModuleWithOpts(text, parserOptions)
	}
	compiler := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1).WithCapabilities(capabilities())
	if compiler.Compile(modules); compiler.Failed() {
		t.Fatal(compiler.Errors)
	}
	c := &inputCollector{inputs: ast.NewSet()}
	for _, m := range compiler.Modules {
		for _, r := range m.Rules {
			name := r.Head.Ref()[0].String()
			if !strings.HasPrefix(name, "test_") {
				continue
			}
			q := rego.New(rego.Query(m.Package.Path.String()+"."+name), rego.Compiler(compiler), rego.QueryTracer(c))
			if _, err := q.Eval(t.Context()); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
	var out []ast.Value
	c.inputs.Foreach(func(x *ast.Term) { out = append(out, x.Value) })
	return out
}

// TestCredentialSetsDecideTheSame: on every input of the built-in rules' tests, and on every
// canary sample, a seeded evaluation decides exactly as one that evaluates every rule: the
// first, which computes the seeds, and the second, which finds them kept.
func TestCredentialSetsDecideTheSame(t *testing.T) {
	rev := builtinWith(t, "")
	ref := unseeded(rev)
	inputs := builtinTestInputs(t)
	if len(inputs) < 50 {
		t.Fatalf("only %d inputs from the built-in rules' tests", len(inputs))
	}
	inputs = append(inputs, canaryInputs(t)...)
	denied := 0
	for i, in := range inputs {
		want, err := ref.Evaluate(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		if len(want.Deny) > 0 {
			denied++
		}
		for round := range 2 {
			got, err := rev.Evaluate(t.Context(), in)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.EqualFunc(got.Deny, want.Deny, violationEqual) || !slices.EqualFunc(got.Warn, want.Warn, violationEqual) {
				t.Errorf("input %d, round %d: seeded %+v, unseeded %+v\ninput: %v", i, round, got, want, in)
			}
		}
	}
	if denied < 20 {
		t.Errorf("only %d of %d inputs are refused: the comparison says little", denied, len(inputs))
	}
	t.Logf("%d inputs, %d refused", len(inputs), denied)
}

func violationEqual(a, b Violation) bool { return a == b }

// canaryInputs are the canary's sample inputs.
func canaryInputs(t *testing.T) []ast.Value {
	t.Helper()
	var out []ast.Value
	for _, s := range SampleInputs() {
		out = append(out, s.Value)
	}
	return out
}

// TestCredentialSetsHiddenUnderWith: a policy that evaluates a seeded rule `with` other
// credentials gets the rule's value for those, not the seed.
func TestCredentialSetsHiddenUnderWith(t *testing.T) {
	rev := builtinWith(t, `package credgate.admission

import data.credgate.lib

deny contains lib.violation("leak", "", "the seed leaked") if {
	n := count(lib.credential_env)
	n > 0
	m := count(lib.credential_env) with input.credentials as []
	m == n
}

tokens := {upper(c.name) | some c in input.credentials}

deny contains lib.violation("leak-first", "", "a value found under a with was kept") if {
	m := count(tokens) with input.credentials as []
	n := count(tokens)
	m == n
}

deny contains lib.violation("mocked", "", "the seed leaked past a mocked function") if {
	count(tokens) > 0
	mocked := tokens with upper as "X"
	mocked == tokens
}
`)
	for _, r := range []string{"data.credgate.lib.credential_env", "data.credgate.admission.tokens"} {
		if !slices.Contains(seededRefs(rev), r) {
			t.Fatalf("%s is not seeded: %v", r, seededRefs(rev))
		}
	}
	in, err := exampleInput(t).Value()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		res, err := rev.Evaluate(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range res.Deny {
			if v.Rule == "leak" || v.Rule == "leak-first" || v.Rule == "mocked" {
				t.Errorf("%+v", v)
			}
		}
	}
}

// credValue is a credential's value with name and variables env, each set from a Secret key.
func credValue(name string, env ...string) ast.Value {
	var vars []string
	for _, e := range env {
		vars = append(vars, `{"name": "`+e+`", "fromSecret": true, "key": "`+strings.ToLower(e)+`", "optional": false, "overridable": false}`)
	}
	return ast.MustParseTerm(`{"name": "` + name + `", "type": "generic", "secretRef": {"name": "` + name + `"}, "env": [` + strings.Join(vars, ", ") + `], "files": [], "mountPath": "", "volumeName": "", "token": null, "allowedServiceAccounts": [], "status": {}}`).Value
}

// podInput is an input of namespace ns for pod (JSON) requesting creds.
func podInput(ns, pod string, creds ...ast.Value) ast.Value {
	terms := make([]*ast.Term, len(creds))
	for i, c := range creds {
		terms[i] = ast.NewTerm(c)
	}
	o := ast.MustParseTerm(`{"namespace": {"name": "` + ns + `", "labels": {}}, "pod": ` + pod + `, "missing": [], "available": [], "targets": ["c"]}`).Value.(ast.Object)
	o.Insert(credentialsKey, ast.ArrayTerm(terms...))
	return o
}

const plainPod = `{"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}`

// sameAsUnseeded checks, twice (values found, then kept), that rev decides in as unseeded.
func sameAsUnseeded(t *testing.T, rev *Revision, in ast.Value) {
	t.Helper()
	want, werr := unseeded(rev).Evaluate(t.Context(), in)
	for round := range 2 {
		got, err := rev.Evaluate(t.Context(), in)
		if (err == nil) != (werr == nil) || !slices.EqualFunc(got.Deny, want.Deny, violationEqual) || !slices.EqualFunc(got.Warn, want.Warn, violationEqual) {
			t.Errorf("round %d: seeded %+v (%v), unseeded %+v (%v)\ninput: %v", round, got, err, want, werr, in)
		}
	}
}

// keptSets lists the sets rev keeps in namespace ns of credentials names.
func keptSets(rev *Revision, ns string, names ...string) []*keptSet {
	var out []*keptSet
	for _, k := range rev.sets.kept {
		if k.ns == ns && slices.Equal(k.names, names) {
			out = append(out, k)
		}
	}
	return out
}

// TestCredentialSetsNeverStale: a Credential's new revision (a new value) is never decided
// with the values found for the old one; the same values reuse theirs; a set holding an older
// value of a Credential is let go; the kept sets stay within their bounds.
func TestCredentialSetsNeverStale(t *testing.T) {
	rev := builtinWith(t, "")
	credA, credB := credValue("a", "TOKEN"), credValue("b", "OTHER")
	credA2 := credValue("a", "TOKEN", "OTHER") // a's next revision sets OTHER too: then a and b conflict
	conflicts := func(in ast.Value) bool {
		t.Helper()
		res, err := rev.Evaluate(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(res.Deny, func(v Violation) bool { return v.Rule == "conflicting-env" })
	}
	if conflicts(podInput("team-a", plainPod, credA, credB)) {
		t.Fatal("a and b conflict before a's new revision")
	}
	first := rev.sets.begin(podInput("team-a", plainPod, credA, credB)).kept
	if first == nil || !slices.Contains(first.known, true) {
		t.Fatal("nothing kept for the set (a, b)")
	}
	conflicts(podInput("team-a", plainPod, credA, credB))
	if again := rev.sets.begin(podInput("team-a", plainPod, credA, credB)).kept; again != first {
		t.Error("the same values found their rules' values again")
	}
	if !conflicts(podInput("team-a", plainPod, credA2, credB)) {
		t.Error("a's new revision, which sets OTHER as b does, was decided with the old values")
	}
	// a's older value first, then its newer one: the sets holding the older are let go.
	for _, in := range []ast.Value{podInput("team-a", plainPod, credA), podInput("team-a", plainPod, credB, credA), podInput("team-b", plainPod, credA, credB),
		podInput("team-a", plainPod, credA2, credB), podInput("team-a", plainPod, credB, credA2)} {
		sameAsUnseeded(t, rev, in)
	}
	// The sets of team-a holding a are kept with its newest value only.
	if k := keptSets(rev, "team-a", "a", "b"); len(k) != 1 || k[0].creds[0] != credA2 {
		t.Errorf("the set (a, b) of team-a: %d kept, want one, with a's newest value", len(k))
	}
	if k := keptSets(rev, "team-a", "a"); len(k) != 0 {
		t.Error("the set (a) of team-a, with a's older value, is still kept")
	}
	if k := keptSets(rev, "team-b", "a", "b"); len(k) != 1 {
		t.Error("the set (a, b) of team-b was let go with team-a's")
	}
	// Many sets: within the bounds, the oldest let go first.
	for i := range 2 * maxCredentialSets {
		c := credValue(fmt.Sprintf("c%d", i))
		if _, err := rev.Evaluate(t.Context(), podInput("team-a", plainPod, c, credB)); err != nil {
			t.Fatal(err)
		}
		if len(rev.sets.kept) > maxCredentialSets || rev.sets.bytes > maxSeededBytes {
			t.Fatalf("after %d sets: %d kept, holding %d bytes", i+1, len(rev.sets.kept), rev.sets.bytes)
		}
	}
	if k := keptSets(rev, "team-a", fmt.Sprintf("c%d", 2*maxCredentialSets-1), "b"); len(k) != 1 {
		t.Error("the newest set is not kept")
	}
	if k := keptSets(rev, "team-a", "c0", "b"); len(k) != 0 {
		t.Error("the oldest set is still kept")
	}
}

// TestCredentialSetsKeepLatestRevisions: a large Credential updated again and again, each
// revision requested beside another credential, keeps only its latest value, and the bytes kept
// stay within their bound.
func TestCredentialSetsKeepLatestRevisions(t *testing.T) {
	rev := builtinWith(t, "")
	big := func(i int) ast.Value {
		var vars []string
		for j := range 8 {
			vars = append(vars, fmt.Sprintf(`{"name": "V%d", "fromSecret": false, "value": "%d%s", "overridable": false}`, j, i, strings.Repeat("x", 32<<10)))
		}
		return ast.MustParseTerm(`{"name": "big", "type": "generic", "env": [` + strings.Join(vars, ", ") + `], "files": [], "mountPath": "", "volumeName": "", "token": null, "allowedServiceAccounts": [], "status": {}}`).Value
	}
	for i := range maxCredentialSets {
		in := podInput("team-a", plainPod, big(i), credValue(fmt.Sprintf("x%03d", i)))
		if _, err := rev.Evaluate(t.Context(), in); err != nil {
			t.Fatal(err)
		}
	}
	holding := 0
	for _, k := range rev.sets.kept {
		if slices.Contains(k.names, "big") {
			holding++
		}
	}
	if holding != 1 {
		t.Errorf("%d sets hold a revision of big, want 1 (its latest)", holding)
	}
	if rev.sets.bytes > maxSeededBytes {
		t.Errorf("%d bytes kept, more than %d", rev.sets.bytes, maxSeededBytes)
	}
}

// TestCredentialSetsRuleTree: a rule is not seeded when other rules add to its document — a
// package under it, or a rule above it with a ground ref head — and decides as unseeded.
func TestCredentialSetsRuleTree(t *testing.T) {
	rootPod := `{"metadata": {"name": "bad", "labels": {"x": "1", "y": "2"}}, "spec": {"securityContext": {"runAsUser": 0}, "containers": [{"name": "c", "image": "i"}]}}`
	for _, tt := range []struct{ name, parent, child string }{
		{"a package under a partial object", `p[c.name] := c.type if some c in input.credentials

deny contains lib.violation("no-root", "", "root") if object.get(p, "root", false) == true
`, `root if input.pod.spec.securityContext.runAsUser == 0
`},
		{"a ground head above a package's rule", `p.names contains input.pod.metadata.name

deny contains lib.violation("bad-name", "", "bad") if "bad" in p.names
`, `names contains c.name if some c in input.credentials
`},
		{"a package under a multi-value rule", `p[c.name] contains 1 if some c in input.credentials

deny contains lib.violation("x", "", "x") if count(p) > 1
`, `q if input.pod.spec.securityContext.runAsUser == 0
`},
		{"keys the pod chooses", `p[k] := "pod" if some k, _ in input.pod.metadata.labels

deny contains lib.violation("x", "", "x") if is_string(p.n)
`, `n := count(input.credentials)
`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src, err := Merge(Builtin(), Source{Modules: map[string]string{
				"user/a.rego": "package credgate.admission\n\nimport data.credgate.lib\n\n" + tt.parent,
				"user/b.rego": "package credgate.admission.p\n\n" + tt.child,
			}})
			if err != nil {
				t.Fatal(err)
			}
			rev, err := Compile(t.Context(), src)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range seededRefs(rev) {
				if strings.HasPrefix(r, "data.credgate.admission") {
					t.Errorf("%s is seeded", r)
				}
			}
			sameAsUnseeded(t, rev, podInput("team-a", rootPod, credValue("a", "TOKEN"), credValue("n", "N")))
		})
	}
}

// TestCredentialSetsOnlyWhatIsEvaluated: a seeded rule that no evaluation reaches — a policy
// object's whose namespaceSelector does not select the namespace, or one reached only for
// some pods — is never evaluated for the set, and one that fails keeps nothing: the seeded
// evaluation decides, and fails, exactly where the unseeded one does.
func TestCredentialSetsOnlyWhatIsEvaluated(t *testing.T) {
	rev := compileObjectsOf(t, Object{Name: "prod-only", NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}},
		Rego: `package credgate.admission

first := c.name if some c in input.credentials

deny contains {"rule": "first", "credential": "", "message": first} if input.pod.spec.hostNetwork
`})
	if !slices.ContainsFunc(seededRefs(rev), func(r string) bool { return strings.HasSuffix(r, ".first") }) {
		t.Fatalf("first is not seeded: %v", seededRefs(rev))
	}
	twoCreds := []ast.Value{credValue("a", "A"), credValue("b", "B")} // first: a conflict
	hostPod := `{"metadata": {"name": "p"}, "spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "i"}]}}`
	prod := podInput("team-p", hostPod, twoCreds...) // selected: first fails the evaluation
	prod.(ast.Object).Insert(namespaceKey, ast.MustParseTerm(`{"name": "team-p", "labels": {"env": "prod"}}`))
	for _, in := range []ast.Value{podInput("team-a", plainPod, twoCreds...), podInput("team-a", hostPod, twoCreds...), prod} {
		sameAsUnseeded(t, rev, in)
	}
	if _, err := rev.Evaluate(t.Context(), prod); err == nil {
		t.Error("the conflict of first does not fail the evaluation in a selected namespace")
	}
	if k := keptSets(rev, "team-p", "a", "b"); len(k) != 0 {
		t.Error("a failed evaluation kept what it found")
	}
	if k := keptSets(rev, "team-a", "a", "b"); len(k) != 1 {
		t.Fatalf("%d sets (a, b) kept, want 1", len(k))
	} else {
		for i, r := range rev.sets.refs {
			if strings.HasSuffix(r.String(), ".first") && k[0].seeds.known[i] {
				t.Error("first, which no evaluation reached, is kept")
			}
		}
	}
}

// TestCredentialSetsConcurrent: evaluations in parallel share a set's seeds (run it with
// -race) and decide as unseeded ones.
func TestCredentialSetsConcurrent(t *testing.T) {
	rev := builtinWith(t, "")
	var inputs []ast.Value
	var want []Result
	for _, in := range append(canaryInputs(t), builtinTestInputs(t)[:20]...) {
		res, err := unseeded(rev).Evaluate(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		inputs, want = append(inputs, in), append(want, res)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for round := range 20 {
				i := (g + round) % len(inputs)
				got, err := rev.Evaluate(t.Context(), inputs[i])
				if err != nil {
					t.Error(err)
					return
				}
				if !slices.EqualFunc(got.Deny, want[i].Deny, violationEqual) || !slices.EqualFunc(got.Warn, want[i].Warn, violationEqual) {
					t.Errorf("input %d: seeded %+v, unseeded %+v", i, got, want[i])
				}
			}
		})
	}
	wg.Wait()
}

// TestCredentialSetsRuleShapes: credential-only rules of every shape — else chains, defaults,
// constant early exits, partial objects read by key and whole, multi-value rules,
// comprehensions, every, not, functions, a package read whole or walked — read by pods in turn
// (one pod's evaluation keeping values the next finds), under `with` of the credentials, of
// the input, of data and of a function, decide as unseeded, for credential sets in every order.
func TestCredentialSetsRuleShapes(t *testing.T) {
	src, err := Merge(Builtin(), Source{Modules: map[string]string{"user/h.rego": `package credgate.admission.h

s := "many" if { count(input.credentials) > 1 } else := "one" if { count(input.credentials) == 1 } else := "none"

default d := -1

d := count(input.credentials) if count(input.credentials) > 1

e if { some c in input.credentials; c.name == "a" }

e if { some c in input.credentials; c.name == "b" }

po[c.name] := c.type if some c in input.credentials

mv[c.type] contains c.name if some c in input.credentials

cm := {n | some c in input.credentials; n := c.name}

ev if every c in input.credentials { c.type == "generic" }

nt if not count(input.credentials) > 5

names := [c.name | some c in input.credentials]

up := {upper(n) | some n in names}

f(flag) := s if flag

`, "user/p.rego": `package credgate.admission

import data.credgate.lib
import data.credgate.admission.h
import data.credgate.admission.h.s
import data.credgate.admission.h.d
import data.credgate.admission.h.e
import data.credgate.admission.h.po
import data.credgate.admission.h.mv
import data.credgate.admission.h.cm
import data.credgate.admission.h.ev
import data.credgate.admission.h.nt
import data.credgate.admission.h.up
import data.credgate.admission.h.f

deny contains lib.violation("s", "", sprintf("%v %v %v %v %v %v", [s, d, e, cm, object.get({"x": ev}, "x", "u"), nt])) if input.pod.metadata.labels.s

deny contains lib.violation("po-a", "", sprintf("%v", [po.a])) if input.pod.metadata.labels.poa

deny contains lib.violation("po", "", sprintf("%v", [po])) if input.pod.metadata.labels.po

deny contains lib.violation("mv", "", sprintf("%v %v", [mv.generic, mv])) if input.pod.metadata.labels.mv

deny contains lib.violation("with", "", sprintf("%v %v %v", [v, w, u])) if {
	input.pod.metadata.labels.with
	v := s with input.credentials as []
	w := s
	u := up with upper as lower
}

deny contains lib.violation("with-first", "", sprintf("%v %v", [v, w])) if {
	input.pod.metadata.labels.withfirst
	w := [x | x := up[_]] with input.credentials as [{"name": "zz"}]
	v := up
}

deny contains lib.violation("mocked-data", "", sprintf("%v %v", [v, w])) if {
	input.pod.metadata.labels.mock
	v := s with data.credgate.admission.h.s as "mock"
	w := s
}

deny contains lib.violation("func", "", sprintf("%v", [f(input.pod.metadata.labels.func)])) if input.pod.metadata.labels.func

deny contains lib.violation("tree", "", sprintf("%v", [data.credgate.admission.h.po, data.credgate.admission.h["cm"]])) if input.pod.metadata.labels.tree

deny contains lib.violation("walk", "", sprintf("%v", [k])) if {
	input.pod.metadata.labels.walk
	some k, v in data.credgate.admission.h
	k in {"s", "cm", "up"}
	v == v
}

deny contains lib.violation("whole-input", "", sprintf("%v", [v])) if {
	input.pod.metadata.labels.wi
	v := s with input as {"credentials": [{"name": "q"}, {"name": "r"}], "pod": input.pod}
}
`}})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := Compile(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"s", "d", "e", "po", "mv", "cm", "up"} {
		if !slices.Contains(seededRefs(rev), "data.credgate.admission.h."+want) {
			t.Errorf("%s is not seeded: %v", want, seededRefs(rev))
		}
	}
	creds := []ast.Value{credValue("a", "A"), credValue("b", "B")}
	var pods []string
	for _, l := range []string{"poa", "with", "withfirst", "mock", "func", "s", "po", "mv", "tree", "walk", "wi"} {
		pods = append(pods, `{"metadata": {"name": "p", "labels": {"`+l+`": true}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}`)
	}
	for _, set := range [][]ast.Value{creds, creds[:1], {creds[1], creds[0]}, {creds[0], creds[0]}, nil} {
		for _, pod := range pods {
			sameAsUnseeded(t, rev, podInput("team-a", pod, set...))
		}
		// In the other order too.
		for i := len(pods) - 1; i >= 0; i-- {
			sameAsUnseeded(t, rev, podInput("team-b", pods[i], set...))
		}
	}
}

// bigCred is a credential a tenant may write: 64 literal env vars and an
// access.policyDocument of n small numbers (about 2n bytes of JSON).
func bigCred(name string, n int) ast.Value {
	var vars []string
	for j := range 64 {
		vars = append(vars, fmt.Sprintf(`{"name": "V%d", "fromSecret": false, "value": "v", "overridable": false}`, j))
	}
	doc := "[" + strings.TrimSuffix(strings.Repeat("0,", n), ",") + "]"
	return ast.MustParseTerm(`{"name": "` + name + `", "type": "generic", "secretRef": null, "env": [` + strings.Join(vars, ", ") +
		`], "files": [], "mountPath": "", "volumeName": "", "token": null, "access": {"level": "", "roles": [], "policyDocument": ` + doc +
		`}, "allowedServiceAccounts": [], "status": {}}`).Value
}

// TestCredentialSetsLargeCredential: a tenant's large credential (30 KiB of JSON, 64
// variables, which lib.credential_env's [cred, e] pairs each refer to) is counted once, and lets
// go no other namespace's set, however often it is requested.
func TestCredentialSetsLargeCredential(t *testing.T) {
	rev := builtinWith(t, "")
	others := maxCredentialSets - 1
	for i := range others {
		if _, err := rev.Evaluate(t.Context(), podInput(fmt.Sprintf("team-%d", i), plainPod, credValue("c", "TOKEN"))); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(rev.sets.kept); n != others {
		t.Fatalf("%d sets kept before, want %d", n, others)
	}
	big := bigCred("big", 10000)
	raw := len(big.String())
	if _, err := rev.Evaluate(t.Context(), podInput("evil", plainPod, big)); err != nil {
		t.Fatal(err)
	}
	if k := keptSets(rev, "evil", "big"); len(k) != 1 || k[0].bytes > 20*raw {
		t.Errorf("the large credential's set (%d bytes of text) is not kept, or counted as much more: %v", raw, k)
	}
	if n := len(rev.sets.kept); n != others+1 {
		t.Errorf("one tenant's %d-byte credential let go %d of the other %d namespaces' sets", raw, others+1-n, others)
	}
	// Again and again, between requests of another namespace.
	hot := podInput("team-a", plainPod, credValue("a", "TOKEN"))
	misses := 0
	for range 10 {
		if _, err := rev.Evaluate(t.Context(), hot); err != nil {
			t.Fatal(err)
		}
		if _, err := rev.Evaluate(t.Context(), podInput("evil", plainPod, big)); err != nil {
			t.Fatal(err)
		}
		if rev.sets.begin(hot).kept == nil {
			misses++
		}
	}
	if misses > 0 {
		t.Errorf("team-a's set let go after %d of 10 requests of namespace evil", misses)
	}
}

// TestCredentialSetsInUseStay: a namespace's requests of ever new credential sets (dry runs,
// which cost a tenant nothing) let go the sets used least recently, never one another
// namespace uses all along.
func TestCredentialSetsInUseStay(t *testing.T) {
	rev := builtinWith(t, "")
	e := NewEngine(rev)
	hot := podInput("team-a", plainPod, credValue("a", "TOKEN"))
	if _, err := e.Evaluate(t.Context(), hot); err != nil {
		t.Fatal(err)
	}
	misses := 0
	for i := range 4 * maxCredentialSets {
		in := podInput("evil", plainPod, credValue(fmt.Sprintf("x%d", i), "X"))
		in.(ast.Object).Insert(ast.StringTerm("request"), ast.MustParseTerm(`{"dryRun": true}`))
		if _, err := e.Evaluate(t.Context(), in); err != nil {
			t.Fatal(err)
		}
		if rev.sets.begin(hot).kept == nil {
			misses++
		}
		if _, err := e.Evaluate(t.Context(), hot); err != nil { // team-a's set, in use all along
			t.Fatal(err)
		}
	}
	if misses > 0 {
		t.Errorf("team-a's set, used on every other request, was let go %d times by %d dry-run requests of namespace evil", misses, 4*maxCredentialSets)
	}
}
