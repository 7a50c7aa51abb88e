package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func runCommand(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(t.Context(), args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestPolicyList: credgate policy list shows every rule of the revision — the built-ins from
// their metadata, the examples' rules from theirs, with the file they come from — as a table
// or as JSON.
func TestPolicyList(t *testing.T) {
	code, out, errOut := runCommand(t, "policy", "list", "../../examples/policies")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^RULE +SETS +ENFORCEMENT +SOURCE +DESCRIPTION$`),
		regexp.MustCompile(`(?m)^static-credentials +warn,deny +warn +builtin/static_credentials\.rego:\d+ +Warns when a credential hands a pod a long-lived cloud key`),
		regexp.MustCompile(`(?m)^unknown-credential +deny +deny +builtin/unknown_credential\.rego:\d+ +Refuses a pod that requests a credential that does not exist`),
		regexp.MustCompile(`(?m)^prod-read-write-service-account +deny +deny +\.\./\.\./examples/policies/prod_read_write\.rego:\d+ +In namespaces labelled env=prod`),
		regexp.MustCompile(`(?m)^temporary-credentials-required +deny +deny +\.\./\.\./examples/policies/require_temporary_in_prod\.rego:\d+ `),
		// A CredentialPolicy file: its module named by the object, its enforcement its own.
		regexp.MustCompile(`(?m)^hub-write-token +deny +audit +policy/hub-write-tokens\.rego:\d+ +Research pods may read`),
	} {
		if !want.MatchString(out) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 1+8+3 {
		t.Errorf("%d lines, want a header, 8 built-in rules and 3 of the examples:\n%s", n, out)
	}

	code, out, errOut = runCommand(t, "policy", "list", "-o", "json")
	if code != 0 {
		t.Fatalf("json: exit %d: %s", code, errOut)
	}
	var rules []struct {
		ID, Enforcement, Description, File string
		Builtin                            bool
	}
	if err := json.Unmarshal([]byte(out), &rules); err != nil {
		t.Fatalf("json: %v\n%s", err, out)
	}
	if len(rules) != 8 || rules[0].ID != "admin-scoped-credential" || !rules[0].Builtin || rules[0].Description == "" {
		t.Errorf("json: %+v, want the 8 built-in rules", rules)
	}
}

// TestPolicyListUserRuleWithoutMetadata: a rule without # METADATA is listed by its file, line
// and Rego rule.
func TestPolicyListUserRuleWithoutMetadata(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "team.rego"), []byte("package credgate.admission\n\nwarn contains \"label your team\" if not input.pod.metadata.labels.team\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCommand(t, "policy", "list", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := regexp.MustCompile(`(?m)^data\.credgate\.admission\.warn +warn +warn +` + regexp.QuoteMeta(filepath.ToSlash(dir)) + `/team\.rego:3 +\(no # METADATA\)$`)
	if !want.MatchString(out) {
		t.Errorf("output lacks %s:\n%s", want, out)
	}
}

// TestPolicyCommandsRefuseReservedPackages: list, test and check refuse a policy directory
// declaring a package reserved for credgate, naming the file and line.
func TestPolicyCommandsRefuseReservedPackages(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "lib.rego"), []byte("package credgate.lib\n\nrequires_temporary := true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	where := filepath.ToSlash(dir) + "/lib.rego:1: package credgate.lib is reserved"
	for _, tt := range []struct {
		args []string
		code int
	}{
		{[]string{"policy", "list", dir}, 2},
		{[]string{"policy", "test", dir}, 2},
		{[]string{"policy", "check", dir}, 1},
	} {
		code, _, errOut := runCommand(t, tt.args...)
		if code != tt.code || !strings.Contains(errOut, where) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tt.args, code, errOut, tt.code, where)
		}
	}
}

// TestPolicyTestFlags: credgate policy test names a failing user test by its file and line and
// folds the built-in part of its trace; prints the coverage of each user file (and with
// --coverage the lines not evaluated); selects tests with --run; and keeps its exit codes.
func TestPolicyTestFlags(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"team.rego": "package credgate.admission\n\nimport data.credgate.lib\n\ndeny contains lib.violation(\"team-label\", \"\", \"label it\") if {\n\tinput.namespace.labels.env == \"prod\"\n\tnot input.pod.metadata.labels.team\n}\n\nwarn contains \"big\" if count(input.pod.spec.containers) > 3\n",
		"team_test.rego": "package credgate.team_test\n\nimport data.credgate.test as t\n\nprod(inp) := object.union(inp, {\"namespace\": {\"name\": \"p\", \"labels\": {\"env\": \"prod\"}}})\n\n" +
			"test_required if {\n\t[\"team-label\", \"\"] in t.denied(prod(t.input_for(t.trainer, [])))\n}\n\n" +
			"test_wrong if {\n\tnot [\"team-label\", \"\"] in t.denied(prod(t.input_for(t.trainer, [])))\n}\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := regexp.QuoteMeta(filepath.ToSlash(dir))

	code, out, errOut := runCommand(t, "policy", "test", dir, "--coverage")
	if code != 1 {
		t.Errorf("exit %d, want 1 (a test fails): %s", code, errOut)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^FAIL  data\.credgate\.team_test\.test_wrong \(` + d + `/team_test\.rego:11\)\n      ` + d + `/team_test\.rego:12: this expression failed:$`),
		regexp.MustCompile(`(?m)^        … \d+ lines in built-in files$`),
		regexp.MustCompile(`(?m)^  ` + d + `/team\.rego +75\.0%  \(3 of 4 lines\)$`),
		regexp.MustCompile(`(?m)^  built-in files +\d+\.\d%`),
		regexp.MustCompile(`(?m)^not covered:\n  ` + d + `/team\.rego:10$`),
	} {
		if !want.MatchString(out) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}

	code, out, _ = runCommand(t, "policy", "test", dir, "--run", `team_test\.test_required$`, "-v")
	if code != 0 || !strings.Contains(out, "PASS  data.credgate.team_test.test_required (") || !strings.Contains(out, "1 passed, 0 failed") {
		t.Errorf("--run: exit %d:\n%s", code, out)
	}
	if code, out, _ = runCommand(t, "policy", "test", dir, "--run", "nothing_matches"); code != 1 || !strings.Contains(out, `no test matches --run "nothing_matches"`) {
		t.Errorf("--run matching nothing: exit %d:\n%s", code, out)
	}
	if code, _, errOut = runCommand(t, "policy", "test", dir, "--run", "("); code != 2 || !strings.Contains(errOut, `test name pattern "("`) {
		t.Errorf("--run (: exit %d, stderr %q", code, errOut)
	}
}

// TestPolicyCheckInputSchema: credgate policy check refuses a reference to input the schema
// does not have, at its line in the file as written.
func TestPolicyCheckInputSchema(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "typo.rego"), []byte("package credgate.admission\nimport data.credgate.lib\n\ndeny contains lib.violation(\"x\", c.name, \"m\") if {\n    some c in input.credentialz\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCommand(t, "policy", "check", dir)
	want := filepath.ToSlash(dir) + "/typo.rego:5: rego_type_error: input.credentialz is not in the input schema (docs/policy-input.schema.json): input has available, credentials,"
	if code != 1 || !strings.Contains(errOut, want) {
		t.Errorf("exit %d, stderr:\n%s\nwant %q", code, errOut, want)
	}
	if code, out, errOut := runCommand(t, "policy", "check", "../../examples/policies"); code != 0 || !strings.Contains(out, "reading only what the input has") {
		t.Errorf("examples: exit %d: %s%s", code, out, errOut)
	}
}
