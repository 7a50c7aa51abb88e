package policies

import "github.com/open-policy-agent/opa/v1/ast"

// lib.target_containers is read by most built-in rules, and is the same for every rule of one
// evaluation: OPA evaluates its two rules once per evaluation, a fifth of the steps of the
// example pod's (22 of 106). targetContainersOf computes its value in Go, from the input, as
// those rules compute it, and the evaluation finds it in its virtual document cache
// (seededCache), as it finds the credential sets' values: outside every `with` only, where OPA
// pushes a new frame of the cache, so that a rule evaluated with another input evaluates
// lib.target_containers as written. Only the two rules exactly as credgate writes them are
// seeded (containerDomains; package credgate.lib is reserved: no user policy may add to it).
// TestTargetContainersOf holds the value to OPA's on every input of the rules' tests and on
// inputs of every shape a policy input may take; TestCredentialSetsDecideTheSame holds a seeded
// evaluation to an unseeded one.

// targetContainersOf returns lib.target_containers' value for input: the set of the members of
// input.pod.spec.initContainers and input.pod.spec.containers whose name is in input.targets,
// with Rego's meaning of each step — `some c in x` takes the elements of an array or a set
// and the values of an object; `c.name` is an object's member, or "name" itself for a set
// holding it; `in` compares by value — and the empty set where any step is undefined.
func targetContainersOf(input ast.Value) *ast.Term {
	set := ast.NewSet()
	targets := dot(input, keyTargets)
	if targets == nil {
		return ast.NewTerm(set)
	}
	pod := dot(input, keyPod)
	for _, path := range containerTerms {
		list := pod
		for _, k := range path {
			list = dot(list, k)
		}
		if list == nil {
			continue
		}
		each(list.Value, func(c *ast.Term) {
			if name := dot(c.Value, nameKey); name != nil && in(name, targets.Value) {
				set.Add(c)
			}
		})
	}
	return ast.NewTerm(set)
}

// containerTerms are containerPaths as terms.
var containerTerms = func() [][]*ast.Term {
	out := make([][]*ast.Term, len(containerPaths))
	for i, path := range containerPaths {
		out[i] = stringsRef(path)
	}
	return out
}()

// dot is v.<k> for a string k, as a Rego ref reads it: an object's member, k itself for a set
// holding it, nil (undefined) otherwise. v may be nil (undefined), and so may what dot returns.
func dot(v any, k *ast.Term) *ast.Term {
	switch v := v.(type) {
	case *ast.Term:
		if v == nil {
			return nil
		}
		return dot(v.Value, k)
	case ast.Object:
		return v.Get(k)
	case ast.Set:
		if v.Contains(k) {
			return k
		}
	}
	return nil
}

// each calls fn with what `some c in v` binds c to: an array's or a set's elements, an object's
// values; nothing for anything else.
func each(v ast.Value, fn func(*ast.Term)) {
	switch v := v.(type) {
	case *ast.Array:
		v.Foreach(fn)
	case ast.Set:
		v.Foreach(fn)
	case ast.Object:
		v.Foreach(func(_, e *ast.Term) { fn(e) })
	}
}

// in is `x in coll`, as OPA's internal.member_2 is: whether coll holds x — a set by its
// lookup (by hash, then value: numbers too large for a float64, equal in value but spelled
// differently, are not found), an array's element or an object's value equal to x.
func in(x *ast.Term, coll ast.Value) bool {
	if s, ok := coll.(ast.Set); ok {
		return s.Contains(x)
	}
	found := false
	each(coll, func(e *ast.Term) {
		if !found && ast.Compare(e.Value, x.Value) == 0 {
			found = true
		}
	})
	return found
}
