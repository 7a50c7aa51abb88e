package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/policies"
)

// TestPolicyObject: credgate policy object prints a CredentialPolicy holding the file as it
// is, with its enforcement and selector, that a policy directory (and so the cluster) serves
// as the file's rules; a file that does not compile prints nothing and names its line.
func TestPolicyObject(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "notebooks.rego")
	rego := "package credgate.admission\n\ndeny contains {\"rule\": \"notebook\", \"message\": \"no\"} if {\n\tinput.pod.metadata.labels.app == \"notebook\"\n}\n"
	if err := os.WriteFile(file, []byte(rego), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCommand(t, "policy", "object", "notebooks", file, "--enforce", "notebook=warn", "--namespace-selector", "team-type=research")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "  rego: |\n    package credgate.admission\n") {
		t.Errorf("the Rego is not a literal block:\n%s", out)
	}
	var p v1alpha1.CredentialPolicy
	if err := yaml.UnmarshalStrict([]byte(out), &p); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if p.Kind != "CredentialPolicy" || p.APIVersion != "credgate.dev/v1alpha1" || p.Name != "notebooks" || p.Spec.Rego != rego ||
		p.Spec.Enforcement["notebook"] != v1alpha1.PolicyWarn || p.Spec.NamespaceSelector.MatchLabels["team-type"] != "research" {
		t.Errorf("printed %+v", p)
	}
	// Saved in a policy directory, it is served as the object.
	served := t.TempDir()
	if err := os.WriteFile(filepath.Join(served, "notebooks.yaml"), []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := policies.LoadDirs(served)
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := src.Objects["notebooks"]; !ok || o.Enforcement["notebook"] != policies.ActionWarn || src.Modules[policies.ObjectFile("notebooks")] != rego {
		t.Errorf("the printed object loads as %+v", src.Objects)
	}

	bad := filepath.Join(dir, "bad.rego")
	if err := os.WriteFile(bad, []byte("package credgate.admission\n\ndeny contains x if y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bad", bad}, bad + ":3: rego_unsafe_var_error"},
		{[]string{"Bad_Name", file}, `name "Bad_Name"`},
		{[]string{"x", file, "--enforce", "notebook=block"}, "the action must be deny, warn or audit"},
		{[]string{"x", file, "--namespace-selector", "a in (b"}, "--namespace-selector"},
		{[]string{"x", filepath.Join(dir, "missing.rego")}, "no such file"},
	} {
		code, out, errOut := runCommand(t, append([]string{"policy", "object"}, tc.args...)...)
		if code != 2 || out != "" || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2, nothing, an error with %q", tc.args, code, out, errOut, tc.want)
		}
	}
}

// TestPolicyObjectYAMLKeepsTheText: whatever the text — leading spaces, no final newline,
// several, blank lines with spaces, tabs, carriage returns — the YAML reads back as it.
func TestPolicyObjectYAMLKeepsTheText(t *testing.T) {
	for _, text := range []string{
		"package credgate.admission\n",
		"package credgate.admission",
		"package credgate.admission\n\n\n",
		"  package credgate.admission\n",
		"package credgate.admission\n  \n\tx := 1\n",
		"package credgate.admission\r\nx := 1\r\n",
		"package credgate.admission\n# a: b\n- c\n--- \n...\n",
		"\npackage credgate.admission\n",
	} {
		out, err := policyObjectYAML(policies.Object{Name: "p", Rego: text})
		if err != nil {
			t.Fatal(err)
		}
		var p v1alpha1.CredentialPolicy
		if err := yaml.UnmarshalStrict(out, &p); err != nil || p.Spec.Rego != text {
			t.Errorf("%q: read back %q (%v) from:\n%s", text, p.Spec.Rego, err, out)
		}
	}
}
