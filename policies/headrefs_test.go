package policies

import (
	"strings"
	"testing"
)

// TestHeadRefsAreChecked: what a module may not read is refused when it reads it from a key in
// a rule head's ref (p.q[k] := v, p.q[k] contains v), which OPA's walkers do not visit: another
// policy object's rules, from a policy object or a user policy.
func TestHeadRefsAreChecked(t *testing.T) {
	const peek = "package credgate.admission\n\npeek.rules[data.credgate.object.victim.deny[_].rule] := true\n\n" +
		"deny contains {\"rule\": \"x\", \"message\": \"m\"} if peek.rules[\"victim-rule\"]\n"
	const peekSet = "package credgate.admission\n\npeek.rules[data.credgate.object.victim.deny[_].rule] contains 1\n\n" +
		"deny contains {\"rule\": \"x\", \"message\": \"m\"} if peek.rules[\"victim-rule\"]\n"
	victim := Object{Name: "victim", Rego: atkRule("victim-rule")}
	for name, extra := range map[string]Source{
		"a policy object, a value rule": ObjectsSource([]Object{victim, {Name: "evil", Rego: peek}}),
		"a policy object, a set rule":   ObjectsSource([]Object{victim, {Name: "evil", Rego: peekSet}}),
		"a user policy": func() Source {
			s := ObjectsSource([]Object{victim})
			s.Modules["user/peek.rego"] = peek
			return s
		}(),
	} {
		t.Run(name, func(t *testing.T) {
			src, err := Merge(Builtin(), extra)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Compile(t.Context(), src)
			if err == nil || !strings.Contains(err.Error(), "data.credgate.object.victim") {
				t.Errorf("compiled, or refused for another reason (%v): want it refused for reading data.credgate.object.victim", err)
			}
		})
	}
}
