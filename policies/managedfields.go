package policies

import (
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// managedFieldsPaths are where an admitted object's managed fields sit in the policy input: the
// object's, and the pod's (the same value for a Pod; a workload's pod template has none).
var managedFieldsPaths = [][]string{
	{"object", "metadata", "managedFields"},
	{"pod", "metadata", "managedFields"},
}

// ReadsManagedFields reports whether the revision's policies may read an object's
// metadata.managedFields: the API server stamps them with the time to the second, so pods a Job
// creates from one template differ there alone, and a decision that cannot have read them holds
// for each of them (review.KeyRequest.IgnoreManagedFields).
//
// It is decided once, when the revision is compiled, from every reference to the input in
// every module: a reference whose constant part stops at or before managedFields (input,
// input.pod, input.object.metadata, input.pod.metadata[k]) may read them; one that leaves that
// path by a constant name (input.pod.spec, input.pod.metadata.labels, input.credentials)
// cannot. So it errs towards true: a policy that passes input.pod to a function reads it all.
func (r *Revision) ReadsManagedFields() bool { return r.readsManagedFields }

// readsManagedFields reports whether any of modules, as parsed (before the compiler binds refs
// to local variables), may read the input's managed fields. An import of the input is a ref
// like any other: one that may hold them counts, whatever its alias is used for.
func readsManagedFields(modules map[string]*ast.Module) bool {
	reads := false
	var visit func(x any) bool
	walk := func(t *ast.Term) { ast.NewGenericVisitor(visit).Walk(t) }
	visit = func(x any) bool {
		if reads {
			return true
		}
		switch v := x.(type) {
		case *ast.Expr:
			if terms, ok := v.Terms.([]*ast.Term); ok && v.IsCall() && objectGet(terms, walk, &reads) {
				for _, w := range v.With {
					ast.NewGenericVisitor(visit).Walk(w)
				}
				return true
			}
		case ast.Call:
			return objectGet(v, walk, &reads)
		case *ast.Term:
			ref, ok := inputRef(v)
			if !ok {
				return false
			}
			if mayReach(ref) {
				reads = true
				return true
			}
			// The rest of the ref (dynamic keys) may refer to the input too.
			for _, t := range ref[1:] {
				walk(t)
			}
			return true
		}
		return false
	}
	for _, m := range modules {
		ast.NewGenericVisitor(visit).Walk(m)
		for _, t := range headRefTerms(m) { // which OPA's visitor does not walk
			walk(t)
		}
		if reads {
			return true
		}
	}
	return false
}

// inputRef returns t as a ref rooted at the input, when it is one: the input itself, or a ref
// that starts with it.
func inputRef(t *ast.Term) (ast.Ref, bool) {
	switch v := t.Value.(type) {
	case ast.Var:
		if v.Equal(ast.InputRootDocument.Value) {
			return ast.InputRootRef, true
		}
	case ast.Ref:
		if v.HasPrefix(ast.InputRootRef) {
			return v, true
		}
	}
	return nil, false
}

// objectGet handles call, when it is object.get(r, key, default) with r the input or a ref
// rooted at it and key a constant name or path, as the ref r.key: what the built-in rules
// write for input.available, which may be absent. It reports whether it handled the call,
// after walking what it did not decide; it sets *reads when the call may read them.
func objectGet(call []*ast.Term, walk func(*ast.Term), reads *bool) bool {
	if len(call) < 4 || call[0].Value.Compare(ast.ObjectGet.Ref()) != 0 {
		return false
	}
	ref, ok := inputRef(call[1])
	if !ok {
		return false
	}
	var path ast.Ref
	switch k := call[2].Value.(type) {
	case ast.String:
		path = ast.Ref{call[2]}
	case *ast.Array:
		for i := range k.Len() {
			if _, ok := k.Elem(i).Value.(ast.String); !ok {
				return false
			}
			path = append(path, k.Elem(i))
		}
	default:
		return false
	}
	if mayReach(ref.Concat(path)) {
		*reads = true
		return true
	}
	for _, t := range append(slices.Clone(ref[1:]), call[3:]...) {
		walk(t)
	}
	return true
}

// mayReach reports whether ref, rooted at the input, may reach a managed fields path: its
// constant part does not leave every such path.
func mayReach(ref ast.Ref) bool {
	for _, path := range managedFieldsPaths {
		reach := true
		for i, p := range path {
			if i+1 >= len(ref) {
				break // the ref stops at or above managedFields: it holds them
			}
			s, ok := ref[i+1].Value.(ast.String)
			if !ok {
				break // a dynamic key: it may be managedFields
			}
			if string(s) != p {
				reach = false
				break
			}
		}
		if reach {
			return true
		}
	}
	return false
}
