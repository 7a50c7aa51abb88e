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
	} {
		if !want.MatchString(out) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "\n"); n != 1+8+2 {
		t.Errorf("%d lines, want a header, 8 built-in rules and 2 of the examples:\n%s", n, out)
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
