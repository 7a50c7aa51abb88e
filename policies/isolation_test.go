package policies_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/credgate/credgate/policies"
)

// requireTemporaryPod is the training pod's sample input (static AWS keys) in a namespace
// labelled credgate.dev/require-temporary, or not.
func requireTemporaryPod(t *testing.T, required bool) ast.Value {
	t.Helper()
	var in ast.Value
	for _, s := range policies.SampleInputs() {
		if s.Name == "sample training-pod.json" {
			in = s.Value
		}
	}
	if in == nil {
		t.Fatal("no sample training-pod.json")
	}
	labels := `{}`
	if required {
		labels = `{"credgate.dev/require-temporary": "true"}`
	}
	out := in.(ast.Object).Copy()
	out.Insert(ast.StringTerm("namespace"), ast.MustParseTerm(`{"name": "ml-team", "labels": `+labels+`}`))
	return out
}

func compileWith(t *testing.T, user map[string]string) (*policies.Revision, error) {
	t.Helper()
	src, err := policies.Merge(policies.Builtin(), policies.Source{Modules: user})
	if err != nil {
		t.Fatal(err)
	}
	return policies.Compile(t.Context(), src)
}

func rules(vs []policies.Violation) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Rule)
	}
	return out
}

// TestUserPolicyCannotReachBuiltinHelpers: a user policy in the entry point defining a rule
// named like a built-in's helper defines its own rule, and changes nothing of the built-ins —
// neither extending the helper (static keys refused in every namespace) nor clashing with it
// (every evaluation in a require-temporary namespace an eval_conflict_error, a 500).
func TestUserPolicyCannotReachBuiltinHelpers(t *testing.T) {
	tests := []struct {
		name, policy string
	}{
		{"extends", `package credgate.admission

requires_temporary if input.request.operation == "CREATE"
`},
		{"clashes", `package credgate.admission

requires_temporary := false
`},
		{"shadows a set helper", `package credgate.admission

static_keys contains ["aws-data", "AWS", "AWS_SECRET_ACCESS_KEY"] if false

env_setters[name] contains "x" if some name in {"WANDB_API_KEY"}
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rev, err := compileWith(t, map[string]string{"user/helper.rego": tt.policy})
			if err != nil {
				t.Fatal(err)
			}
			for _, required := range []bool{false, true} {
				res, err := rev.Evaluate(t.Context(), requireTemporaryPod(t, required))
				if err != nil {
					t.Fatalf("require-temporary=%t: %v", required, err)
				}
				deny, warn := slices.Contains(rules(res.Deny), "static-credentials"), slices.Contains(rules(res.Warn), "static-credentials")
				if deny != required || warn == required || len(res.Deny) > 1 || len(res.Warn) > 1 {
					t.Errorf("require-temporary=%t: deny %v, warn %v; want static-credentials only, in %s", required, rules(res.Deny), rules(res.Warn),
						map[bool]string{true: "deny", false: "warn"}[required])
				}
			}
		})
	}
}

// TestReservedPackagesRefused: a user module declaring a package of credgate's own — built-in
// rules, helpers, fixtures, or anything else under credgate but the entry point — is refused
// as it loads, with its file and line, by Load, Compile, RunTests and CheckDir alike.
func TestReservedPackagesRefused(t *testing.T) {
	reserved := []string{"credgate", "credgate.builtin", "credgate.builtin.static_credentials", "credgate.lib", "credgate.lib.iam",
		"credgate.test", "credgate.helpers", "credgate.admissions", "credgate.builtin_test"}
	for _, pkg := range reserved {
		t.Run(pkg, func(t *testing.T) {
			text := "# A helper of ours.\n\npackage " + pkg + "\n\nrequires_temporary := true\n"
			_, err := compileWith(t, map[string]string{"user/mine.rego": text})
			var re *policies.ReservedError
			if !errors.As(err, &re) || re.File != "user/mine.rego" || re.Line != 3 || re.Package != pkg {
				t.Fatalf("Compile: %v, want a ReservedError at user/mine.rego:3", err)
			}
			if !strings.Contains(err.Error(), "user/mine.rego:3: package "+pkg+" is reserved") {
				t.Errorf("error %q does not name the file, line and package", err)
			}

			dir := t.TempDir()
			write(t, dir, "mine.rego", text)
			if _, err := policies.Load(t.Context(), dir); !errors.As(err, &re) {
				t.Errorf("Load: %v, want a ReservedError", err)
			}
			src, err := policies.LoadDirs(dir)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := policies.RunTests(t.Context(), src); !errors.As(err, &re) {
				t.Errorf("RunTests: %v, want a ReservedError", err)
			}
			problems, err := policies.CheckDir(dir, false)
			if err != nil {
				t.Fatal(err)
			}
			if len(problems) != 1 || !strings.Contains(problems[0], "mine.rego:3: package "+pkg+" is reserved") {
				t.Errorf("CheckDir: %q, want the reserved package", problems)
			}
		})
	}
	// A test file may not declare them either: it would extend the fixtures or helpers the
	// built-in tests run with.
	src, err := policies.Merge(policies.Builtin(), policies.Source{Tests: map[string]string{
		"user/mine_test.rego": "package credgate.test\n\ntrainer := 1\n"}})
	if err != nil {
		t.Fatal(err)
	}
	var re *policies.ReservedError
	if _, err := policies.RunTests(t.Context(), src); !errors.As(err, &re) {
		t.Errorf("RunTests with a test in credgate.test: %v, want a ReservedError", err)
	}
}

// TestUserPackagesAllowed: the entry point and packages below it, packages of the user's own
// outside credgate, and for tests a credgate.<name>_test package compile, importing
// data.credgate.lib and data.credgate.test.
func TestUserPackagesAllowed(t *testing.T) {
	src, err := policies.Merge(policies.Builtin(), policies.Source{
		Modules: map[string]string{
			"user/entry.rego": "package credgate.admission\n\nimport data.acme.naming\nimport data.credgate.lib\n\ndeny contains lib.violation(\"acme-name\", \"\", \"bad name\") if {\n\tinput.request.namespace == \"ml-team\"\n\tnot naming.ok\n}\n",
			"user/sub.rego":   "package credgate.admission.team_a\n\nlimit := 3\n",
			"user/acme.rego":  "package acme.naming\n\nok if startswith(input.request.name, \"acme-\")\n",
		},
		Tests: map[string]string{
			"user/entry_test.rego": "package credgate.admission_test\n\nimport data.credgate.test as t\n\ntest_named if [\"acme-name\", \"\"] in t.denied(object.union(t.input_for(t.trainer, []), {\"request\": {\"namespace\": \"ml-team\"}}))\n",
			"user/prod_test.rego":  "package credgate.prod_test\n\ntest_ok if true\n",
			"user/acme_test.rego":  "package acme.naming_test\n\nimport data.acme.naming\n\ntest_acme if naming.ok with input.request.name as \"acme-x\"\n",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := policies.Compile(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	res, err := rev.Evaluate(t.Context(), requireTemporaryPod(t, false))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(rules(res.Deny), "acme-name") {
		t.Errorf("denied %v, want acme-name from the user policy", rules(res.Deny))
	}
	rep, err := policies.RunTests(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Failed() > 0 {
		var out strings.Builder
		rep.Print(&out, true)
		t.Errorf("tests failed:\n%s", out.String())
	}
}

// TestReservedDataRefused: a data file defining data.credgate — where the built-in rules,
// helpers and the user's own entry point live — is refused, naming the file.
func TestReservedDataRefused(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "data.yaml", "credgate:\n  lib:\n    violation: 1\n")
	_, err := policies.LoadDir(dir)
	var re *policies.ReservedError
	if !errors.As(err, &re) || re.File != "user/data.yaml" || !strings.Contains(err.Error(), "data.credgate") {
		t.Fatalf("LoadDir: %v, want a ReservedError for user/data.yaml", err)
	}
	_, err = policies.Compile(t.Context(), policies.Source{Data: map[string]any{"credgate": map[string]any{"builtin": 1}}})
	if !errors.As(err, &re) {
		t.Errorf("Compile: %v, want a ReservedError", err)
	}
}

// TestEvaluatesWhateverSetsAreDefined: the query reads each set through a comprehension, so a
// revision evaluates without user policies, with user policies that define only deny or only
// warn, and even without the built-ins.
func TestEvaluatesWhateverSetsAreDefined(t *testing.T) {
	tests := []struct {
		name string
		src  policies.Source
		deny []string
		warn []string
	}{
		{name: "built-ins only", src: policies.Builtin(), warn: []string{"static-credentials"}},
		{name: "user deny only, no built-ins", src: policies.Source{Modules: map[string]string{
			"user/d.rego": "package credgate.admission\n\ndeny contains {\"rule\": \"d\", \"message\": \"no\"} if true\n"}}, deny: []string{"d"}},
		{name: "user warn only, no built-ins", src: policies.Source{Modules: map[string]string{
			"user/w.rego": "package credgate.admission\n\nwarn contains \"careful\" if true\n"}}, warn: []string{"user-policy"}},
		{name: "nothing at all", src: policies.Source{}},
		{name: "user complete rule, undefined", src: policies.Source{Modules: map[string]string{
			"user/c.rego": "package credgate.admission\n\ndeny := {\"never\"} if input.nope\n"}}},
		{name: "user complete rule and partial object", src: policies.Source{Modules: map[string]string{
			"user/c.rego": "package credgate.admission\n\ndeny := {{\"rule\": \"c\", \"message\": \"m\"}} if input.request\n",
			"user/o.rego": "package credgate.admission\n\nwarn[\"a\"] := {\"rule\": \"o\", \"message\": \"m\"}\n"}}, deny: []string{"c"}, warn: []string{"o"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rev, err := policies.Compile(t.Context(), tt.src)
			if err != nil {
				t.Fatal(err)
			}
			res, err := rev.Evaluate(t.Context(), requireTemporaryPod(t, false))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rules(res.Deny), tt.deny) || !slices.Equal(rules(res.Warn), tt.warn) {
				t.Errorf("deny %v, warn %v; want %v, %v", rules(res.Deny), rules(res.Warn), tt.deny, tt.warn)
			}
		})
	}
}

// TestMergeRefusesDuplicateFiles: two directories with a file of one name are an error, not
// one file silently dropped.
func TestMergeRefusesDuplicateFiles(t *testing.T) {
	a := policies.Source{Modules: map[string]string{"user/p.rego": "package credgate.admission\n"}}
	b := policies.Source{Modules: map[string]string{"user/p.rego": "package credgate.admission\n\ndeny contains \"x\" if true\n"}}
	if _, err := policies.Merge(a, b); err == nil || !strings.Contains(err.Error(), "user/p.rego") {
		t.Errorf("Merge: %v, want the duplicate file named", err)
	}
	tests := policies.Source{Tests: map[string]string{"user/p.rego": "package x_test\n"}}
	if _, err := policies.Merge(a, tests); err == nil {
		t.Error("Merge of a module and a test of one name: no error")
	}
}

// TestCheckDirWithFileNamedLikeABuiltin: a user directory with a lib.rego of its own is
// checked with every built-in file, not taken for the built-ins' own directory.
func TestCheckDirWithFileNamedLikeABuiltin(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "lib.rego", "package acme.lib\n\nprefix := \"acme-\"\n")
	write(t, dir, "naming.rego", "package credgate.admission\n\nimport data.acme.lib\nimport data.credgate.lib as cl\n\n"+
		"deny contains cl.violation(\"acme-name\", \"\", \"bad name\") if not startswith(input.request.name, lib.prefix)\n")
	problems, err := policies.CheckDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

func write(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A package under credgate written with brackets, or with a lookalike letter, is under
// credgate all the same.
func TestReservedPackagesRefusedHoweverWritten(t *testing.T) {
	for _, pkg := range []string{`credgate["x-y"]`, `credgate["bυiltin"]`, `credgate["builtin"].static_credentials`} {
		t.Run(pkg, func(t *testing.T) {
			_, err := compileWith(t, map[string]string{"user/mine.rego": "package " + pkg + "\n\nx := true\n"})
			var re *policies.ReservedError
			if !errors.As(err, &re) {
				t.Fatalf("Compile: %v, want a ReservedError", err)
			}
		})
	}
}

// Policies cannot reach the network, the server's environment or chance.
func TestForbiddenBuiltins(t *testing.T) {
	for _, call := range []string{
		`http.send({"method": "get", "url": "http://127.0.0.1:1/"})`,
		`opa.runtime()`,
		`net.lookup_ip_addr("example.com")`,
		`rand.intn("x", 10)`,
	} {
		t.Run(call, func(t *testing.T) {
			text := "package credgate.admission\n\ndeny contains {\"rule\": \"x\", \"credential\": \"\", \"message\": sprintf(\"%v\", [v])} if {\n\tv := " + call + "\n}\n"
			_, err := compileWith(t, map[string]string{"user/reach.rego": text})
			if err == nil || !strings.Contains(err.Error(), "undefined function") {
				t.Fatalf("Compile: %v, want the function refused", err)
			}
		})
	}
}
