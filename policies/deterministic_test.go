package policies

import "testing"

// TestDeterministic: a revision is deterministic unless a user module calls a function OPA
// marks non-deterministic; the built-in rules' own clock reads (against a Credential's
// expiresAt) do not count.
func TestDeterministic(t *testing.T) {
	for _, tt := range []struct {
		name, module string
		want         bool
	}{
		{"built-in only", "", true},
		{"a user rule on the input", `package credgate.admission

deny contains "x" if input.request.user == "mallory"
`, true},
		{"the clock", `package credgate.admission

deny contains "night" if time.clock([time.now_ns(), "UTC"])[0] < 6
`, false},
		{"certificates checked against the clock", `package credgate.admission

deny contains "bad chain" if {
	some c in input.pod.spec.containers
	[ok, _] := crypto.x509.parse_and_verify_certificates(c.image)
	not ok
}
`, false},
		{"the clock in a rule head's ref", `package credgate.admission

at.hour[time.now_ns()] := true

deny contains "late" if count(at.hour) > 5
`, false},
		{"the clock in a helper", `package credgate.admission

now := time.now_ns()

deny contains "late" if now > 0
`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := builtinWith(t, tt.module).Deterministic(); got != tt.want {
				t.Errorf("Deterministic() = %t, want %t", got, tt.want)
			}
		})
	}
}

// builtinWith compiles the built-in policies with module, a user policy ("" for none).
func builtinWith(t *testing.T, module string) *Revision {
	t.Helper()
	src := Builtin()
	if module != "" {
		var err error
		if src, err = Merge(src, Source{Modules: map[string]string{"user/p.rego": module}}); err != nil {
			t.Fatal(err)
		}
	}
	rev, err := Compile(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	return rev
}
