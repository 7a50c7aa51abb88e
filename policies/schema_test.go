package policies

import (
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// TestInputSchemaAcceptsInputs: the schema accepts every bundled sample input (input
// documents as credgate builds them), and refuses what credgate never builds — so that the
// schema cannot lie about the input, in either direction. (eval's TestInputSchemaAcceptsEvalInputs
// holds it to the inputs the admission path builds from the examples.)
func TestInputSchemaAcceptsInputs(t *testing.T) {
	samples := SampleInputs()
	if len(samples) == 0 {
		t.Fatal("no sample inputs")
	}
	for _, s := range samples {
		problems, err := ValidateInput(t.Context(), s.Value)
		if err != nil {
			t.Fatal(err)
		}
		if len(problems) > 0 {
			t.Errorf("%s does not match the input schema:\n  %s", s.Name, strings.Join(problems, "\n  "))
		}
	}

	sample := samples[0].Value.(ast.Object)
	for _, tt := range []struct{ name, path, value string }{
		{"unknown top-level key", "credentialz", `[]`},
		{"unknown pod field", "pod", `{"spec": {"containres": []}}`},
		{"a literal env with a Secret key", "credentials", `[{"name": "a", "type": "generic", "secretRef": null, "env": [{"name": "X", "fromSecret": false, "overridable": false, "key": "k"}], "files": [], "mountPath": "", "volumeName": "", "token": null, "imagePullSecret": false, "access": {"level": "", "roles": []}, "aws": {}, "gcp": {}, "azure": {}, "allowedServiceAccounts": [], "status": {"conditions": [], "generation": 1}}]`},
		{"a gcp mode credgate never sets", "credentials", `[{"name": "a", "type": "gcp", "secretRef": null, "env": [], "files": [], "mountPath": "", "volumeName": "", "token": null, "imagePullSecret": false, "access": {"level": "", "roles": []}, "aws": {}, "gcp": {"mode": "impersonate", "serviceAccountEmail": "", "scopes": []}, "azure": {}, "allowedServiceAccounts": [], "status": {"conditions": [], "generation": 1}}]`},
		{"a namespace label not a string", "namespace", `{"name": "n", "labels": {"a": 1}}`},
		{"an unknown operation", "request", `{"operation": "DELETE", "namespace": "n", "name": "x", "dryRun": false, "kind": {"group": "", "version": "v1", "kind": "Pod"}, "userInfo": {"username": "u", "groups": []}}`},
	} {
		v := sample.Copy()
		v.Insert(ast.StringTerm(tt.path), ast.MustParseTerm(tt.value))
		problems, err := ValidateInput(t.Context(), v)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %q", tt.name, problems)
		if len(problems) == 0 {
			t.Errorf("%s: the schema accepts an input with %s: %s", tt.name, tt.path, tt.value)
		}
	}
}
