package policies

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// unseeded is rev evaluating every rule in every evaluation: the reference a seeded
// evaluation must equal.
func unseeded(rev *Revision) *Revision {
	r := *rev
	r.sets = nil
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
			if v.Rule == "leak" || v.Rule == "mocked" {
				t.Errorf("%+v", v)
			}
		}
	}
}

// TestCredentialSetsNeverStale: a Credential's new revision (a new value) is never decided
// with the seeds of the old one; the same values reuse their seeds; older values of a set are
// let go, and the kept sets stay within their bounds.
func TestCredentialSetsNeverStale(t *testing.T) {
	rev := builtinWith(t, "")
	credA := ast.MustParseTerm(`{"name": "a", "type": "generic", "secretRef": {"name": "a"}, "env": [{"name": "TOKEN", "fromSecret": true, "key": "t", "optional": false, "overridable": false}], "files": [], "mountPath": "", "volumeName": "", "token": null, "allowedServiceAccounts": [], "status": {}}`).Value
	credB := ast.MustParseTerm(`{"name": "b", "type": "generic", "secretRef": {"name": "b"}, "env": [{"name": "OTHER", "fromSecret": true, "key": "t", "optional": false, "overridable": false}], "files": [], "mountPath": "", "volumeName": "", "token": null, "allowedServiceAccounts": [], "status": {}}`).Value
	// a's next revision sets OTHER too: then a and b conflict.
	credA2 := ast.MustParseTerm(`{"name": "a", "type": "generic", "secretRef": {"name": "a"}, "env": [{"name": "TOKEN", "fromSecret": true, "key": "t", "optional": false, "overridable": false}, {"name": "OTHER", "fromSecret": true, "key": "o", "optional": false, "overridable": false}], "files": [], "mountPath": "", "volumeName": "", "token": null, "allowedServiceAccounts": [], "status": {}}`).Value
	input := func(creds ...ast.Value) ast.Value {
		terms := make([]*ast.Term, len(creds))
		for i, c := range creds {
			terms[i] = ast.NewTerm(c)
		}
		o := ast.MustParseTerm(`{"namespace": {"name": "team-a", "labels": {}}, "pod": {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}, "missing": [], "available": ["a", "b"], "targets": ["c"]}`).Value.(ast.Object)
		o.Insert(credentialsKey, ast.ArrayTerm(terms...))
		return o
	}
	conflicts := func(in ast.Value) bool {
		t.Helper()
		res, err := rev.Evaluate(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(res.Deny, func(v Violation) bool { return v.Rule == "conflicting-env" })
	}
	if conflicts(input(credA, credB)) {
		t.Fatal("a and b conflict before a's new revision")
	}
	first := rev.sets.seedsFor(t.Context(), input(credA, credB))
	if again := rev.sets.seedsFor(t.Context(), input(credA, credB)); again != first {
		t.Error("the same values computed their seeds again")
	}
	if !conflicts(input(credA2, credB)) {
		t.Error("a's new revision, which sets OTHER as b does, was decided with the old seeds")
	}
	for _, in := range []ast.Value{input(credB, credA), input(credA2, credB), input(credB, credA2), input(credA)} {
		want, err := unseeded(rev).Evaluate(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := rev.Evaluate(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.EqualFunc(got.Deny, want.Deny, violationEqual) || !slices.EqualFunc(got.Warn, want.Warn, violationEqual) {
			t.Errorf("seeded %+v, unseeded %+v\ninput: %v", got, want, in)
		}
	}
	// The set (a, b) is kept once: with a's newest value.
	kept := 0
	for _, ks := range rev.sets.kept {
		for _, k := range ks {
			if k.names == "team-a\x00a\x00b" {
				kept++
				if k.creds[0] != credA2 {
					t.Error("the set (a, b) keeps a's older value")
				}
			}
		}
	}
	if kept != 1 {
		t.Errorf("the set (a, b) is kept %d times, want once", kept)
	}
	// Many sets: within the bounds.
	for i := range 3 * maxCredentialSets {
		c := ast.MustParseTerm(`{"name": "c` + strings.Repeat("x", i%7) + `", "env": [], "mountPath": ""}`).Value
		rev.sets.seedsFor(t.Context(), input(c, credB))
		if rev.sets.count > maxCredentialSets || rev.sets.held > maxSeededCredentials {
			t.Fatalf("after %d sets: %d kept, holding %d credentials", i+1, rev.sets.count, rev.sets.held)
		}
	}
	if rev.sets.count > 7+3 {
		t.Errorf("%d sets kept, of 7 names (each set's latest values only) and the 3 above", rev.sets.count)
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
