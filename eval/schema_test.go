package eval_test

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/credgate/credgate/eval"
	"github.com/credgate/credgate/internal/app"
	"github.com/credgate/credgate/policies"
	"github.com/credgate/credgate/review"
)

// recorder keeps every input the policies evaluate.
type recorder struct {
	review.Evaluator
	inputs []ast.Value
}

func (r *recorder) Evaluate(ctx context.Context, input ast.Value) (policies.Result, error) {
	r.inputs = append(r.inputs, input)
	return r.Evaluator.Evaluate(ctx, input)
}

// TestInputSchemaAcceptsEvalInputs: every input document the admission path builds for the
// examples and this package's workloads — every preset type of examples/credentials.yaml, the
// keyless gcp and azure modes of testdata/keyless-credentials.yaml,
// Pods, Jobs, CronJobs, the pod templates of apps/v1 workloads, an earlier injection, labelled
// namespaces — matches the input schema (docs/policy-input.schema.json): policy check types
// policies by it, so it must not refuse what credgate gives them.
func TestInputSchemaAcceptsEvalInputs(t *testing.T) {
	scheme, err := app.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	rev, err := policies.Load(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	workloads, err := filepath.Glob("testdata/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	workloads = append(workloads, "../examples/training-job.yaml", "../examples/refused-job.yaml")
	rec := &recorder{Evaluator: policies.NewEngine(rev)}
	for _, creds := range [][]string{
		{"../examples/credentials.yaml"},
		{"../examples/credentials.yaml", "testdata/prod-namespace.yaml"},
		{"../examples/credentials.yaml", "testdata/keyless-credentials.yaml"},
	} {
		for _, w := range workloads {
			if strings.Contains(w, "credentials") || strings.Contains(w, "namespace") || strings.Contains(w, "missing-key") {
				continue // credentials files
			}
			e := &eval.Evaluator{Namespace: "default", Scheme: scheme, Out: io.Discard, Err: io.Discard, Policy: rec, AssumeMinted: true}
			e.Run(t.Context(), inputs(t, []string{w}), inputs(t, creds))
		}
	}
	types, modes := map[string]bool{}, map[string]bool{}
	for i, in := range rec.inputs {
		problems, err := policies.ValidateInput(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		if len(problems) > 0 {
			t.Errorf("input %d (%.200s…) does not match the schema:\n  %s", i, in, strings.Join(problems, "\n  "))
		}
		creds, _ := in.(ast.Object).Get(ast.StringTerm("credentials")).Value.(*ast.Array)
		creds.Foreach(func(c *ast.Term) {
			typ := string(c.Value.(ast.Object).Get(ast.StringTerm("type")).Value.(ast.String))
			types[typ] = true
			// The modes of the cloud objects (aws, gcp, azure) the input gives.
			if o, ok := c.Value.(ast.Object).Get(ast.StringTerm(cloudKey(typ))).Value.(ast.Object); ok {
				if m := o.Get(ast.StringTerm("mode")); m != nil {
					modes[typ+" "+string(m.Value.(ast.String))] = true
				}
			}
		})
	}
	if len(rec.inputs) < 10 || len(types) < 10 {
		t.Errorf("%d inputs with credentials of %d types: the examples no longer exercise the schema", len(rec.inputs), len(types))
	}
	for _, m := range []string{"aws static", "aws webIdentity", "s3-compatible assumeRole", "gcp keyFile", "gcp workloadIdentityFederation",
		"gcp impersonation", "azure clientSecret", "azure workloadIdentity"} {
		if !modes[m] {
			t.Errorf("no input has a credential of %s: the examples and testdata no longer exercise the schema", m)
		}
	}
	t.Logf("%d inputs, credential types %v, modes %v", len(rec.inputs), types, modes)
}

// cloudKey is the key of the input's object of options of a credential of type typ.
func cloudKey(typ string) string {
	switch typ {
	case "gcp", "azure":
		return typ
	}
	return "aws"
}
