package policies_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/credgate/credgate/policies"
)

// TestBuiltinRegoTests runs every _test.rego of the built-in rules.
func TestBuiltinRegoTests(t *testing.T) {
	rep, err := policies.RunTests(t.Context(), policies.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Results) == 0 {
		t.Fatal("no Rego tests ran")
	}
	var out bytes.Buffer
	rep.Print(&out, false)
	if rep.Failed() > 0 {
		var verbose bytes.Buffer
		rep.Print(&verbose, true)
		t.Fatalf("Rego tests failed:\n%s", verbose.String())
	}
	t.Logf("%s", out.String())
}

// TestEveryRuleIsTested deletes each built-in rule file in turn and checks that its own
// _test.rego then fails: no rule is covered only by tests that would pass without it.
func TestEveryRuleIsTested(t *testing.T) {
	src := policies.Builtin()
	for name := range src.Modules {
		if name == "builtin/lib.rego" || name == "builtin/iam.rego" {
			continue // helpers: their tests are the rules' tests
		}
		t.Run(name, func(t *testing.T) {
			without := policies.Source{Modules: map[string]string{}, Tests: src.Tests, Data: src.Data}
			for n, m := range src.Modules {
				if n != name {
					without.Modules[n] = m
				}
			}
			rep, err := policies.RunTests(t.Context(), without)
			if err != nil {
				t.Fatal(err)
			}
			testFile := strings.TrimSuffix(name, ".rego") + "_test.rego"
			failed := 0
			for _, r := range rep.Results {
				if !r.Pass() && r.Location.File == testFile {
					failed++
				}
			}
			if failed == 0 {
				t.Errorf("with %s deleted, no test of %s failed", name, testFile)
			}
			t.Logf("with %s deleted, %d tests of %s fail", name, failed, testFile)
		})
	}
}

// TestExamplePolicies runs the worked policies of docs/policies.md (examples/policies) with
// the built-in rules, as `credgate policy test examples/policies` does, and checks them
// strictly as `credgate policy check` does.
func TestExamplePolicies(t *testing.T) {
	user, err := policies.LoadDir("../examples/policies")
	if err != nil {
		t.Fatal(err)
	}
	if len(user.Modules) == 0 || len(user.Tests) == 0 || len(user.Data) == 0 {
		t.Fatalf("examples/policies: %d modules, %d tests, %d data keys; want some of each", len(user.Modules), len(user.Tests), len(user.Data))
	}
	src, err := policies.Merge(policies.Builtin(), user)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := policies.RunTests(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed() > 0 {
		var out bytes.Buffer
		rep.Print(&out, false)
		t.Fatalf("example policy tests failed:\n%s", out.String())
	}
	problems, err := policies.CheckDir("../examples/policies", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// TestCompileWithoutData: a Source with modules and no data compiles (OPA's store needs an
// object at its root, which Compile supplies).
func TestCompileWithoutData(t *testing.T) {
	rev, err := policies.Compile(context.Background(), policies.Source{Modules: map[string]string{
		"p.rego": "package credgate.admission\n\ndeny contains \"no\" if input.x\n\nwarn contains \"w\" if false\n",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if rev.ID() == "" {
		t.Error("revision has no id")
	}
}
