package policies_test

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/credgate/credgate/policies"
)

// TestExplainEveryViolation: on every sample input, with the example policies, Explain finds
// a firing for each violation Evaluate finds — built-in, credential-scoped and user rules — and
// nothing else; each firing locates its rule and the expressions of its body.
func TestExplainEveryViolation(t *testing.T) {
	src, err := policies.LoadDirs("../examples/policies")
	if err != nil {
		t.Fatal(err)
	}
	rev, err := policies.Compile(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	sawScoped, sawUser := false, false
	for _, s := range policies.SampleInputs() {
		res, err := rev.Evaluate(t.Context(), s.Value)
		if err != nil {
			t.Fatal(err)
		}
		firings, err := rev.Explain(t.Context(), s.Value)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]int{}
		for set, vs := range map[string][]policies.Violation{"deny": res.Deny, "warn": res.Warn} {
			for _, v := range vs {
				want[fmt.Sprintf("%s [%s] %s", set, v.Rule, v.Credential)]++
			}
		}
		got := map[string]int{}
		for _, f := range firings {
			got[fmt.Sprintf("%s [%s] %s", f.Set, f.Rule, f.Credential)] += f.Count
			if f.File == "" || f.Line == 0 || len(f.Exprs) == 0 {
				t.Errorf("%s: firing %+v has no location or expressions", s.Name, f)
			}
			for _, x := range f.Exprs {
				if x.File != f.File || x.Line <= f.Line || x.Text == "" {
					t.Errorf("%s: firing at %s:%d: expression %+v is not in its body", s.Name, f.File, f.Line, x)
				}
			}
			sawScoped = sawScoped || f.Rule == "static-credentials" || f.Rule == "admin-scoped-credential"
			sawUser = sawUser || strings.HasPrefix(f.File, "../examples/policies/")
		}
		// A body may give one rule and credential several violations (several messages): the
		// counts add up per rule and credential.
		for k := range want {
			if got[k] == 0 {
				t.Errorf("%s: no firing explains %s", s.Name, k)
			}
		}
		for k := range got {
			if want[k] == 0 {
				t.Errorf("%s: firing %s, which is no violation (violations: %v)", s.Name, k, slices.Sorted(maps.Keys(want)))
			}
		}
	}
	if !sawScoped {
		t.Error("no firing of a credential-scoped rule")
	}
	if !sawUser {
		t.Error("the samples fire no example policy: the test reads nothing of the user's rules")
	}
}

// TestExplainUserRule: the firing of a user rule lists its body's expressions, as written,
// each once and in order, and not the parts of them the compiler rewrote apart.
func TestExplainUserRule(t *testing.T) {
	rev, err := compileWith(t, map[string]string{"user/prod.rego": `package credgate.admission

import data.credgate.lib

deny contains lib.violation("no-static-in-prod", cred.name, msg) if {
	input.namespace.labels["credgate.dev/require-temporary"] == "true"
	some cred in input.credentials
	some e in cred.env
	e.name in {"AWS_SECRET_ACCESS_KEY", "AZURE_CLIENT_SECRET"}
	msg := sprintf("credential %s: %s", [cred.name, e.name])
}
`})
	if err != nil {
		t.Fatal(err)
	}
	firings, err := rev.Explain(t.Context(), requireTemporaryPod(t, true))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range firings {
		if f.Rule != "no-static-in-prod" {
			continue
		}
		got = append(got, fmt.Sprintf("%s %s %s:%d ×%d", f.Set, f.Credential, f.File, f.Line, f.Count))
		for _, x := range f.Exprs {
			got = append(got, fmt.Sprintf("  %s:%d %s", x.File, x.Line, x.Text))
		}
	}
	want := []string{
		"deny aws-data user/prod.rego:5 ×1",
		`  user/prod.rego:6 input.namespace.labels["credgate.dev/require-temporary"] == "true"`,
		"  user/prod.rego:7 some cred in input.credentials",
		"  user/prod.rego:8 some e in cred.env",
		`  user/prod.rego:9 e.name in {"AWS_SECRET_ACCESS_KEY", "AZURE_CLIENT_SECRET"}`,
		`  user/prod.rego:10 msg := sprintf("credential %s: %s", [cred.name, e.name])`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("firings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
