package policies

import (
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// readSet is what of the input a revision's policies may read: a tree of member names from the
// input's root. A node that is whole may be read entirely: some ref stops there, or goes on by
// a key computed when it is evaluated, or passes the value to a function. Any other node is
// read only through its members. A member that is not in the tree is read by no policy, so an
// input without it decides the same (Revision.objectReads).
//
// each, when set, is what of each element of an array there is read (nil: each whole); an
// object there is read whole all the same, its members being what a policy iterating over
// it would get (containerReads is the one that sets it).
type readSet struct {
	whole   bool
	members map[string]*readSet
	each    *readSet
}

// add records that the input may be read at path, the terms of a ref after input: at its
// constant names, and wholly from where it stops or a term is not a constant name.
func (s *readSet) add(path ast.Ref) {
	n := s
	for _, t := range path {
		if n.whole {
			return
		}
		k, ok := t.Value.(ast.String)
		if !ok {
			break // a computed key, or a number: anything below may be read
		}
		n = n.child(string(k))
	}
	n.whole, n.members, n.each = true, nil, nil
}

// addEach records that the elements of an array at path are read as each says (each is not
// changed afterwards): only those of their members are built.
func (s *readSet) addEach(path []string, each *readSet) {
	n := s
	for _, k := range path {
		if n.whole {
			return
		}
		n = n.child(k)
	}
	if !n.whole {
		n.each = union(n.each, each)
	}
}

// stringsRef is the ref of the member names of path.
func stringsRef(path []string) ast.Ref {
	ref := make(ast.Ref, len(path))
	for i, name := range path {
		ref[i] = ast.StringTerm(name)
	}
	return ref
}

// child returns s's member name, added if it has none.
func (s *readSet) child(name string) *readSet {
	c := s.members[name]
	if c == nil {
		if s.members == nil {
			s.members = map[string]*readSet{}
		}
		c = &readSet{}
		s.members[name] = c
	}
	return c
}

// elems is what of each element of an array at s is read: nil for all of it, which is what
// any read set but one with each set reads of an array.
func (s *readSet) elems() *readSet {
	if s == nil || s.whole || s.each == nil || s.each.whole {
		return nil
	}
	return s.each
}

// reaches reports whether a policy may read the value at path, or some part of it.
func (s *readSet) reaches(path []string) bool {
	n := s
	for _, p := range path {
		if n.whole || n.each != nil {
			return true
		}
		if n = n.members[p]; n == nil {
			return false
		}
	}
	return true
}

// member is the part of s read below name; nil when nothing is, s itself when s is whole.
func (s *readSet) member(name string) *readSet {
	if s == nil || s.whole {
		return s
	}
	if s.each != nil {
		return &readSet{whole: true}
	}
	return s.members[name]
}

// sub reports whether name may be read below s, and what of it: nil for all of it. A nil s
// reads all.
func (s *readSet) sub(name string) (*readSet, bool) {
	if s == nil || s.whole || s.each != nil { // (an object where elements are read: whole)
		return nil, true
	}
	m := s.members[name]
	switch {
	case m == nil:
		return nil, false
	case m.whole:
		return nil, true
	}
	return m, true
}

// has reports whether name may be read below s, wholly or in part. A nil s reads all.
func (s *readSet) has(name string) bool {
	_, ok := s.sub(name)
	return ok
}

// union is what a or b read (either may be nil: nothing).
func union(a, b *readSet) *readSet {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	case a.whole:
		return a
	case b.whole:
		return b
	}
	u := &readSet{members: make(map[string]*readSet, len(a.members)+len(b.members)), each: union(a.each, b.each)}
	for k, v := range a.members {
		u.members[k] = union(v, b.members[k])
	}
	for k, v := range b.members {
		if _, ok := a.members[k]; !ok {
			u.members[k] = v
		}
	}
	return u
}

// inputReads returns what modules, as parsed (before the compiler binds refs to local
// variables), may read of the input. Every term that refers to the input counts: a ref rooted
// at it (an import's path, a with's target, a rule head's key included) adds its constant
// names; the input alone, passed anywhere, adds all of it. object.get(r, key, default) with r
// rooted at the input and key a constant name or path is the ref r.key: what the built-in rules
// write for members that may be absent. So it errs towards more: a policy that binds input.pod
// to a variable may read all of the pod.
//
// The terms in skip are left out (containerDomains': Compile adds what they read).
func inputReads(modules map[string]*ast.Module, skip map[*ast.Term]bool) *readSet {
	reads := &readSet{}
	// Unless object.get may mean something else, as OPA's built-in it reads only its path.
	getsPath := !objectGetShadowed(modules)
	var visit func(x any) bool
	walk := func(t *ast.Term) { ast.NewGenericVisitor(visit).Walk(t) }
	visit = func(x any) bool {
		if reads.whole {
			return true
		}
		switch v := x.(type) {
		case *ast.Expr:
			if terms, ok := v.Terms.([]*ast.Term); ok && v.IsCall() && getsPath && objectGet(terms, walk, reads) {
				for _, w := range v.With {
					ast.NewGenericVisitor(visit).Walk(w)
				}
				return true
			}
		case ast.Call:
			return getsPath && objectGet(v, walk, reads)
		case *ast.Term:
			if skip[v] {
				return true
			}
			ref, ok := inputRef(v)
			if !ok {
				return false
			}
			reads.add(ref[1:])
			// The rest of the ref (computed keys) may refer to the input too.
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
	}
	for _, path := range goReads {
		reads.add(path)
	}
	return reads
}

// goReads are the members of the input credgate's own code reads, whatever the policies read:
// a policy object's namespaceSelector is matched on input.namespace.labels, and the values of
// the credential-only rules are kept per namespace name (credsets.go).
var goReads = []ast.Ref{{ast.StringTerm("namespace"), ast.StringTerm("labels")}, {ast.StringTerm("namespace"), ast.StringTerm("name")}}

// objectGetShadowed reports whether a call written object.get(…) in some module may mean
// anything but OPA's built-in, which the modules are read as parsed, before the compiler
// resolves names: a rule named object.… (object.get(o, _, _) := o), an import named object, a
// with replacing object.…, or a variable named object.
func objectGetShadowed(modules map[string]*ast.Module) bool {
	object := ast.Var("object")
	shadowed := false
	isObject := func(t *ast.Term) bool {
		switch v := t.Value.(type) {
		case ast.Var:
			return v.Equal(object)
		case ast.Ref:
			return v[0].Value.Compare(object) == 0
		}
		return false
	}
	var visit func(x any) bool
	visit = func(x any) bool {
		switch v := x.(type) {
		case *ast.With:
			shadowed = shadowed || isObject(v.Target)
		case *ast.Term:
			if r, ok := v.Value.(ast.Ref); ok && r[0].Value.Compare(object) == 0 {
				// object.get and the other built-ins: the rest of the ref is constant.
				for _, t := range r[1:] {
					ast.NewGenericVisitor(visit).Walk(t)
				}
				return true
			}
			shadowed = shadowed || isObject(v)
		}
		return shadowed
	}
	for _, m := range modules {
		for _, imp := range m.Imports {
			shadowed = shadowed || imp.Name().Equal(object)
		}
		for _, t := range headRefTerms(m) {
			ast.NewGenericVisitor(visit).Walk(t)
		}
		ast.WalkRules(m, func(r *ast.Rule) bool {
			shadowed = shadowed || isObject(ast.NewTerm(r.Head.Ref()))
			return shadowed
		})
		ast.NewGenericVisitor(visit).Walk(m)
		if shadowed {
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
// rooted at it and key a constant name or path, as the ref r.key, and walks the rest of it.
// It reports whether it handled the call; the caller walks any other call as terms, where r
// counts whole.
func objectGet(call []*ast.Term, walk func(*ast.Term), reads *readSet) bool {
	if len(call) < 4 || call[0].Value.Compare(ast.ObjectGet.Ref()) != 0 {
		return false
	}
	ref, ok := inputRef(call[1])
	if !ok {
		return false
	}
	path := slices.Clone(ref[1:])
	switch k := call[2].Value.(type) {
	case ast.String:
		path = append(path, call[2])
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
	reads.add(path)
	for _, t := range append(slices.Clone(ref[1:]), call[3:]...) {
		walk(t)
	}
	return true
}

// podReads is what a revision that reads reads may read of an admitted Pod: input.object and
// input.pod are the same object, but for the labels (Input.Value). Nil when it may read all of
// it; an empty set when it reads none.
func podReads(reads *readSet) *readSet {
	r := union(reads.member("object"), reads.member("pod"))
	switch {
	case r == nil:
		return &readSet{}
	case r.whole:
		return nil
	}
	return r
}

// wholeAsNil is s, or nil when s is whole: how Input.value takes all of the input.
func wholeAsNil(s *readSet) *readSet {
	if s.whole {
		return nil
	}
	return s
}
