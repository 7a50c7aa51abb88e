package policies

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// inputSchemaJSON is the JSON Schema (draft-07) of the input document: schema/input.json,
// docs/policy-input.schema.json for editors. TestInputSchemaUpToDate generates it from
// input.go's shape and the Kubernetes types, and keeps the two copies identical;
// TestInputSchemaAcceptsInputs holds it to the inputs credgate builds.
//
//go:embed schema/input.json
var inputSchemaJSON []byte

// InputSchemaRef names the input schema in # METADATA schemas: annotations
// (- input: schema["credgate-input"]), as OPA names a file credgate-input.json of the
// directory given to opa check --schema.
var InputSchemaRef = ast.SchemaRootRef.Append(ast.StringTerm("credgate-input"))

// inputSchemaSet is the schema as OPA's type checker takes it: the type of input in every
// module compiled with it, and schema["credgate-input"] for annotations.
var inputSchemaSet = sync.OnceValues(func() (*ast.SchemaSet, error) {
	var schema any
	if err := json.Unmarshal(inputSchemaJSON, &schema); err != nil {
		return nil, fmt.Errorf("parse the embedded input schema: %w", err)
	}
	ss := ast.NewSchemaSet()
	ss.Put(ast.SchemaRootRef, schema)
	ss.Put(InputSchemaRef, schema)
	return ss, nil
})

// validateQuery checks input against the schema with OPA's JSON Schema validator, prepared
// once.
var validateQuery = sync.OnceValues(func() (rego.PreparedEvalQuery, error) {
	schema, err := ast.ParseTerm(string(inputSchemaJSON))
	if err != nil {
		return rego.PreparedEvalQuery{}, fmt.Errorf("parse the embedded input schema: %w", err)
	}
	q := ast.NewBody(ast.Assign.Expr(ast.ArrayTerm(ast.VarTerm("ok"), ast.VarTerm("errs")),
		ast.CallTerm(ast.RefTerm(ast.VarTerm("json"), ast.StringTerm("match_schema")), ast.NewTerm(ast.InputRootRef), schema)))
	return rego.New(rego.ParsedQuery(q), rego.SetRegoVersion(ast.RegoV1)).PrepareForEval(context.Background())
})

// ValidateInput checks an input document against the input schema (JSON Schema, as OPA's
// json.match_schema reads it) and returns what does not match, by field; nothing when it
// matches.
func ValidateInput(ctx context.Context, input ast.Value) ([]string, error) {
	pq, err := validateQuery()
	if err != nil {
		return nil, err
	}
	rs, err := pq.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return nil, fmt.Errorf("validate input: %w", err)
	}
	if len(rs) != 1 {
		return nil, fmt.Errorf("validate input: %d results", len(rs))
	}
	if ok, _ := rs[0].Bindings["ok"].(bool); ok {
		return nil, nil
	}
	var problems []string
	errs, _ := rs[0].Bindings["errs"].([]any)
	for _, e := range errs {
		m, _ := e.(map[string]any)
		problems = append(problems, fmt.Sprintf("%v: %v", m["field"], m["desc"]))
	}
	if len(problems) == 0 {
		problems = []string{"does not match the input schema"}
	}
	return problems, nil
}
