package policies

import "github.com/open-policy-agent/opa/v1/ast"

// headRefTerms returns the terms of every rule head's ref under x (its else branches
// included), after the rule's name: where p[k].q := v and p[k] contains v keep k. OPA's walkers
// (ast.WalkRefs, ast.WalkTerms, the generic visitor) visit a head's name, arguments, key and
// value but not its ref, so every check of what a module reads walks these too.
func headRefTerms(x any) []*ast.Term {
	var terms []*ast.Term
	ast.WalkRules(x, func(r *ast.Rule) bool {
		if ref := r.Head.Ref(); len(ref) > 1 {
			terms = append(terms, ref[1:]...)
		}
		return false
	})
	return terms
}

// walkRefs calls f on every ref under x, those in rule heads' refs included.
func walkRefs(x any, f func(ast.Ref) bool) {
	ast.WalkRefs(x, f)
	for _, t := range headRefTerms(x) {
		ast.WalkRefs(t, f)
	}
}

// walkTerms calls f on every term under x, those in rule heads' refs included.
func walkTerms(x any, f func(*ast.Term) bool) {
	ast.WalkTerms(x, f)
	for _, t := range headRefTerms(x) {
		ast.WalkTerms(t, f)
	}
}
