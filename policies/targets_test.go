package policies

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// targetShapes are policy inputs of every shape lib.target_containers' steps may meet, written
// as Rego terms (a JSON document is one; {"a"} is a set, which no parsed object holds but the
// rule's meaning covers): containers as an object, a scalar or null, a container that is not an
// object or has no name, names that are numbers (1 and 1.0 are equal; 1e400 and 10e399 are
// equal, but a set does not find one by the other), targets as an object, a set, a string or
// absent, an identical container twice, no pod, no spec.
var targetShapes = []string{
	`{"pod": {"spec": {"containers": [{"name": "a", "x": 1}, {"name": "b"}], "initContainers": [{"name": "a"}]}}, "targets": ["a"]}`,
	`{"pod": {"spec": {"containers": [{"name": "a"}, {"name": "a"}, {"name": "a", "image": "other"}]}}, "targets": ["a", "z"]}`,
	`{"pod": {"spec": {"containers": {"k1": {"name": "a"}, "k2": {"name": "b"}}}}, "targets": ["b"]}`,
	`{"pod": {"spec": {"containers": "a", "initContainers": null}}, "targets": ["a"]}`,
	`{"pod": {"spec": {"containers": [7, "a", null, ["a"], {"nom": "a"}, {"name": null}]}}, "targets": ["a", null]}`,
	`{"pod": {"spec": {"containers": [{"name": 1}, {"name": 2.0}, {"name": "1"}]}}, "targets": [1.0, 2]}`,
	`{"pod": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}, "targets": {"x": "a", "y": "c"}}`,
	`{"pod": {"spec": {"containers": [{"name": "a"}, {"name": "b"}]}}, "targets": {"b"}}`,
	`{"pod": {"spec": {"containers": [{"name": 10e399}, {"name": {"k": 10e399}}]}}, "targets": {1e400, {"k": 1e400}}}`,
	`{"pod": {"spec": {"containers": [{"name": 10e399}, {"name": {"k": 10e399}}]}}, "targets": [1e400, {"k": 1e400}]}`,
	`{"pod": {"spec": {"containers": [{"name": "a"}]}}, "targets": "a"}`,
	`{"pod": {"spec": {"containers": [{"name": "a"}]}}}`,
	`{"pod": {"spec": {"containers": [{"name": "a"}]}}, "targets": []}`,
	`{"pod": {"spec": {"containers": [{"name"}, {"other"}]}}, "targets": ["name"]}`,
	`{"pod": {"spec": {"containers": {{"name": "a"}, {"name": "b"}}}}, "targets": ["a"]}`,
	`{"pod": {"spec": [{"containers": [{"name": "a"}]}]}, "targets": ["a"]}`,
	`{"pod": {"spec": {"spec"}}, "targets": ["a"]}`,
	`{"pod": {}, "targets": ["a"]}`,
	`{"targets": ["a"]}`,
	`{}`,
}

// TestTargetContainersOf holds targetContainersOf to lib.target_containers as OPA evaluates
// it, on every input of the built-in rules' tests, the canary's samples and targetShapes.
func TestTargetContainersOf(t *testing.T) {
	lib := Builtin().Modules["builtin/lib.rego"]
	if lib == "" {
		t.Fatal("no lib.rego among the built-in modules")
	}
	query, err := rego.New(rego.Query("x := data.credgate.lib.target_containers"), rego.Module("lib.rego", lib),
		rego.SetRegoVersion(ast.RegoV1)).PrepareForEval(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	inputs := append(builtinTestInputs(t), canaryInputs(t)...)
	for _, s := range targetShapes {
		inputs = append(inputs, ast.MustParseTerm(s).Value)
	}
	nonEmpty := 0
	for i, in := range inputs {
		rs, err := query.Eval(t.Context(), rego.EvalParsedInput(in))
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 1 {
			t.Fatalf("input %d: lib.target_containers is undefined: %v", i, in)
		}
		want := canonicalSet(t, rs[0].Bindings["x"])
		got := targetContainersOf(in)
		native, err := ast.JSON(got.Value)
		if err != nil {
			t.Fatal(err)
		}
		if have := canonicalSet(t, native); !slices.Equal(have, want) {
			t.Errorf("input %d: targetContainersOf gives\n  %s\nOPA gives\n  %s\ninput: %v", i, strings.Join(have, "\n  "), strings.Join(want, "\n  "), in)
		}
		if len(want) > 0 {
			nonEmpty++
		}
	}
	if nonEmpty < 30 {
		t.Errorf("only %d of %d inputs have target containers: the comparison says little", nonEmpty, len(inputs))
	}
}

// canonicalSet is a set as OPA hands it to Go (a list), each element as JSON, sorted.
func canonicalSet(t *testing.T, v any) []string {
	t.Helper()
	list, ok := v.([]any)
	if !ok {
		t.Fatalf("not a set: %#v", v)
	}
	out := make([]string, len(list))
	for i, e := range list {
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = string(b)
	}
	slices.Sort(out)
	return out
}

// TestTargetContainersHiddenUnderWith: a policy that reads lib.target_containers `with` another
// input — other targets, other containers — gets the rule's value for that input, not the seed.
func TestTargetContainersHiddenUnderWith(t *testing.T) {
	rev := builtinWith(t, `package credgate.admission

import data.credgate.lib

deny contains lib.violation("leak-targets", "", "the seed leaked past other targets") if {
	n := count(lib.target_containers)
	n > 0
	m := count(lib.target_containers) with input.targets as []
	m == n
}

deny contains lib.violation("leak-pod", "", "the seed leaked past another pod") if {
	n := count(lib.target_containers)
	m := count(lib.target_containers) with input.pod.spec as {"containers": [{"name": "x"}]}
	m == n
}
`)
	if !rev.seedsTargets {
		t.Fatal("lib.target_containers is not seeded")
	}
	in, err := exampleInput(t).Value()
	if err != nil {
		t.Fatal(err)
	}
	if n := targetContainersOf(in).Value.(ast.Set).Len(); n != 2 {
		t.Fatalf("the example pod has %d target containers, want 2", n)
	}
	for _, r := range []*Revision{unseeded(rev), rev, rev} {
		res, err := r.Evaluate(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range res.Deny {
			if strings.HasPrefix(v.Rule, "leak") {
				t.Errorf("seeded %t: %+v", r.seedsTargets, v)
			}
		}
	}
}

// TestTargetContainersSeeded: an evaluation of the example pod finds lib.target_containers'
// value and never enters its rules, where one seeding nothing does.
func TestTargetContainersSeeded(t *testing.T) {
	rev := builtinWith(t, "")
	in, err := exampleInput(t).Value()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*Revision{rev, unseeded(rev)} {
		tracer := topdown.NewBufferTracer()
		opts := append(evalOptions(in, r.sets.begin(in), r.targetsOf(in)), rego.EvalQueryTracer(tracer))
		if _, err := r.prepared.Eval(t.Context(), opts...); err != nil {
			t.Fatal(err)
		}
		entered := slices.ContainsFunc(*tracer, func(e *topdown.Event) bool {
			rule, ok := e.Node.(*ast.Rule)
			return ok && e.Op == topdown.EnterOp && rule.Head.Ref().Equal(ast.Ref{ast.VarTerm("target_containers")})
		})
		if entered != !r.seedsTargets {
			t.Errorf("seeded %t: the evaluation entered lib.target_containers' rules: %t", r.seedsTargets, entered)
		}
	}
}
