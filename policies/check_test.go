package policies_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/credgate/credgate/policies"
)

// unformatted is a policy as one might write it: opa fmt would add blank lines after the
// package and the import, moving every line below them. It reads input.credentialz (line 7),
// which the input has not, and names an unsafe variable y (line 8).
const unformatted = `package credgate.admission
import data.credgate.lib
# a comment


deny contains lib.violation("x", "", "msg") if {
    some c in input.credentialz
    c.name == y
}
`

// TestCheckTypeChecksInput: policy check type-checks references to input against the input
// schema, and reports every problem at its line in the file as written — the line policy
// test reports for the same problem.
func TestCheckTypeChecksInput(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "bad.rego", strings.Replace(unformatted, "c.name == y", `c.name == "a"`, 1))
	problems, err := policies.CheckDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	want := dir + "/bad.rego:7: rego_type_error: input.credentialz is not in the input schema (docs/policy-input.schema.json): " +
		"input has available, credentials, missing, namespace, object, pod, request, targets"
	if len(problems) != 2 || !strings.HasSuffix(problems[0], "/bad.rego: not formatted as opa fmt would (run credgate policy check --fix)") || problems[1] != want {
		t.Errorf("problems:\n%s\nwant the formatting and\n%s", strings.Join(problems, "\n"), want)
	}

	// Deeper, and through the Kubernetes types: the pod's spec, an object's metadata.
	write(t, dir, "bad.rego", "package credgate.admission\n\nwarn contains \"x\" if {\n\tsome c in input.pod.spec.containres\n\tinput.object.metadata.lables.team\n\tinput.pod.spec.containers[_].resources.limits[\"nvidia.com/gpu\"] > 1\n}\n")
	problems, err = policies.CheckDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(problems, "\n")
	for _, want := range []string{
		"/bad.rego:4: rego_type_error: input.pod.spec.containres is not in the input schema (docs/policy-input.schema.json): input.pod.spec has activeDeadlineSeconds, affinity,",
		"/bad.rego:5: rego_type_error: input.object.metadata.lables is not in the input schema (docs/policy-input.schema.json): input.object.metadata has annotations,",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	if len(problems) != 2 {
		t.Errorf("%d problems, want 2 (resources.limits is in the schema):\n%s", len(problems), got)
	}
}

// TestCheckAndTestReportTheSameLine: a compile error in an unformatted file is reported at
// the same line, that of the file as written, by policy check and policy test.
func TestCheckAndTestReportTheSameLine(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "bad.rego", unformatted)
	problems, err := policies.CheckDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	const want = "/bad.rego:8: rego_unsafe_var_error: var y is unsafe"
	if !strings.Contains(strings.Join(problems, "\n"), want) {
		t.Errorf("check: %q, want %q", problems, want)
	}
	src, err := policies.LoadDirs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := policies.RunTests(t.Context(), src); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("test: %v, want %q", err, want)
	}

	// Once --fix has rewritten the file, at its line in the file as rewritten.
	if _, err := policies.CheckDir(dir, true); err != nil {
		t.Fatal(err)
	}
	problems, err = policies.CheckDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(problems, "\n"); !strings.Contains(got, "/bad.rego:9: rego_unsafe_var_error: var y is unsafe") || strings.Contains(got, "not formatted") {
		t.Errorf("after --fix: %q", problems)
	}
}

// TestCheckSchemaAnnotation: a module may name the input schema in a # METADATA schemas:
// annotation, as schema["credgate-input"] (the name OPA gives a file credgate-input.json of
// a schema directory), and is type-checked with it.
func TestCheckSchemaAnnotation(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.rego", "# METADATA\n# schemas:\n#   - input: schema[\"credgate-input\"]\npackage credgate.admission\n\ndeny contains \"x\" if input.request.kind.kinds == \"Pod\"\n")
	problems, err := policies.CheckDir(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || !strings.Contains(problems[0], "/a.rego:6: rego_type_error: input.request.kind.kinds is not in the input schema") {
		t.Errorf("problems %q, want input.request.kind.kinds refused", problems)
	}
}

// TestBuiltinsPassTheInputSchema: the built-in rules, their helpers and tests type-check
// against the input schema, which is why it applies to every module, not only the user's.
func TestBuiltinsPassTheInputSchema(t *testing.T) {
	problems, err := policies.CheckDir(".", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Error(p)
	}
}

// TestCheckDirObjectFiles: the Rego of a CredentialPolicy file is checked as a .rego file is —
// the input schema, the strict compile, the object's own rules (partial sets), formatting —
// located in its file.
func TestCheckDirObjectFiles(t *testing.T) {
	object := func(rego string) string {
		return "apiVersion: credgate.dev/v1alpha1\nkind: CredentialPolicy\nmetadata: {name: p}\nspec:\n  rego: |\n" +
			"    " + strings.ReplaceAll(strings.TrimSuffix(rego, "\n"), "\n", "\n    ") + "\n"
	}
	for name, tc := range map[string]struct{ rego, want string }{
		"schema":    {"package credgate.admission\n\ndeny contains {\"rule\": \"x\", \"message\": \"m\"} if {\n\tsome c in input.credentialz\n\tc.name == \"a\"\n}\n", "p.yaml#spec.rego:4: rego_type_error: input.credentialz"},
		"strict":    {"package credgate.admission\n\nimport data.credgate.lib\n\ndeny contains {\"rule\": \"x\", \"message\": \"m\"} if true\n", "p.yaml#spec.rego:3: rego_compile_error: import data.credgate.lib unused"},
		"complete":  {"package credgate.admission\n\ndefault deny := set()\n", "p.yaml#spec.rego:3: deny must be a partial set rule"},
		"formatted": {"package credgate.admission\ndeny contains {\"rule\": \"x\", \"message\": \"m\"} if true\n", "p.yaml: spec.rego is not formatted"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "p.yaml"), []byte(object(tc.rego)), 0o600); err != nil {
				t.Fatal(err)
			}
			problems, err := policies.CheckDir(dir, false)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(strings.Join(problems, "\n"), tc.want) {
				t.Errorf("problems %q, want one with %q", problems, tc.want)
			}
		})
	}
}
