package policies

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// iamStatements is the number of statements of the documents BenchmarkIAMPolicyDocument
// evaluates: the size the issue reported taking ~45 s per admission.
const iamStatements = 3000

// iamDocuments are policy documents of iamStatements statements, by the shape of the work they
// ask of admin-scoped-credential, with whether the rule refuses them.
func iamDocuments() []struct {
	name  string
	doc   map[string]any
	admin bool
} {
	stmt := func(effect string, action, resource any) map[string]any {
		return map[string]any{"Effect": effect, "Action": action, "Resource": resource}
	}
	doc := func(fn func(i int) map[string]any) map[string]any {
		sts := make([]any, iamStatements)
		for i := range sts {
			sts[i] = fn(i)
		}
		return map[string]any{"Version": "2012-10-17", "Statement": sts}
	}
	return []struct {
		name  string
		doc   map[string]any
		admin bool
	}{
		// Named actions on one bucket each: nothing broad to take back.
		{"scoped", doc(func(i int) map[string]any {
			b := fmt.Sprintf("arn:aws:s3:::bucket-%d", i)
			return stmt("Allow", []any{"s3:GetObject", "s3:PutObject", "s3:ListBucket"}, []any{b, b + "/*"})
		}), false},
		// Half service-wide grants on every resource, half Denies that take each back: every
		// grant is checked against the Denies.
		{"taken-back", doc(func(i int) map[string]any {
			if i%2 == 0 {
				return stmt("Allow", fmt.Sprintf("svc%d:*", i/2), "*")
			}
			return stmt("Deny", fmt.Sprintf("svc%d:*", i/2), "*")
		}), false},
		// Half service-wide grants, half Denies that miss (another service each, or one log
		// group): the grants stand.
		{"not-taken-back", doc(func(i int) map[string]any {
			if i%2 == 0 {
				return stmt("Allow", fmt.Sprintf("svc%d:*", i/2), "*")
			}
			return stmt("Deny", fmt.Sprintf("other%d:*", i/2), "arn:aws:logs:us-east-1:123456789012:log-group:unused:*")
		}), true},
	}
}

// iamInput is the input for the example training pod with the aws-data credential declaring doc
// as its access.policyDocument. The document goes into the built value, past the size
// credential.Resolve accepts (credential.MaxPolicyDocumentBytes): what is measured is what the
// rules cost as a document grows.
func iamInput(b *testing.B, doc map[string]any) ast.Value {
	b.Helper()
	in := exampleInput(b)
	in.Cache = nil
	value, err := in.Value()
	if err != nil {
		b.Fatal(err)
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		b.Fatal(err)
	}
	pd, err := jsonDocument(raw)
	if err != nil {
		b.Fatal(err)
	}
	creds := value.(ast.Object).Get(ast.StringTerm("credentials")).Value.(*ast.Array)
	for i := range creds.Len() {
		c := creds.Elem(i).Value.(ast.Object)
		if c.Get(ast.StringTerm("name")).Value.Compare(ast.String("aws-data")) == 0 {
			c.Get(ast.StringTerm("access")).Value.(ast.Object).Insert(ast.StringTerm("policyDocument"), ast.NewTerm(pd))
			return value
		}
	}
	b.Fatal("the example pod requests no aws-data credential")
	return nil
}

// BenchmarkIAMPolicyDocument measures evaluating the built-in rules on the example pod whose
// AWS credential declares a policyDocument of 3,000 statements (iamDocuments), the input built
// once: the cost admin-scoped-credential adds grows with the document, and must grow linearly.
func BenchmarkIAMPolicyDocument(b *testing.B) {
	ctx := context.Background()
	rev, err := Load(ctx, "")
	if err != nil {
		b.Fatal(err)
	}
	for _, d := range iamDocuments() {
		b.Run(d.name, func(b *testing.B) {
			value := iamInput(b, d.doc)
			res, err := rev.Evaluate(ctx, value)
			if err != nil {
				b.Fatal(err)
			}
			refused := false
			for _, v := range res.Deny {
				refused = refused || (v.Rule == "admin-scoped-credential" && v.Credential == "aws-data")
			}
			if refused != d.admin {
				b.Fatalf("admin-scoped-credential refuses the document: %t, want %t (%+v)", refused, d.admin, res.Deny)
			}
			timed(b, func() {
				if _, err := rev.Evaluate(ctx, value); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}
