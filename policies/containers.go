package policies

import (
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The built-in rules read four members of a container: name, env, envFrom and volumeMounts.
// They get the containers from lib.target_containers, which hands each container whole to
// the rule that iterates it, so the read set of the input (inputReads) keeps every container
// whole: its image, command, resources and probes are parsed into OPA values though no rule
// reads them. containerReads narrows that: when every mention of lib.target_containers in every
// module only iterates it and reads constant members of what it yields, each container is
// parsed with those members alone (readSet.each).
//
// It errs towards whole containers. Any other mention of the rule — passed to a function,
// bound whole, a set looked up by a value, mocked by a with, reached by a ref through
// data.credgate.lib, data.credgate or data, or with a key computed when it is evaluated —
// keeps them whole, as does a container yielded by it and used other than by a constant
// member or object.get of a constant key (object.get being OPA's: no module may make the name
// mean anything else, objectGetShadowed), and an iteration of it inside an array
// comprehension: trimmed containers that differ only in members no policy reads are one
// element of the set, where whole they would be two, and only an array counts iterations.

// targetContainers is the rule the analysis follows.
var targetContainers = ast.MustParseRef("data.credgate.lib.target_containers")

// targetContainersRules are the rules of lib.target_containers as credgate writes them
// (policies/lib.rego), as OPA prints them parsed: containerReads narrows only these.
var targetContainersRules = []string{
	`target_containers contains c if { some c in input.pod.spec.initContainers; internal.member_2(c.name, input.targets) }`,
	`target_containers contains c if { some c in input.pod.spec.containers; internal.member_2(c.name, input.targets) }`,
}

// definesTargetContainers reports whether r, a rule of m, is one of lib.target_containers.
func definesTargetContainers(m *ast.Module, r *ast.Rule) bool {
	return m.Package.Path.Equal(targetContainers[:len(targetContainers)-1]) &&
		r.Head.Ref().Equal(ast.Ref{ast.VarTerm("target_containers")})
}

// containerPaths are where lib.target_containers finds the containers, below input.pod.
var containerPaths = [][]string{{"spec", "initContainers"}, {"spec", "containers"}}

// containerDomains returns the terms of modules, as parsed, through which lib.target_containers
// iterates the containers (the domains of its `some c in …`), for inputReads to leave out: nil
// unless its rules are exactly targetContainersRules.
func containerDomains(modules map[string]*ast.Module) map[*ast.Term]bool {
	domains := map[*ast.Term]bool{}
	seen := map[string]bool{}
	for _, m := range modules {
		for _, r := range m.Rules {
			if !definesTargetContainers(m, r) {
				continue
			}
			text := r.String() // (else and body included)
			if !slices.Contains(targetContainersRules, text) || seen[text] {
				return nil
			}
			seen[text] = true
			decl, ok := r.Body[0].Terms.(*ast.SomeDecl)
			if !ok || len(decl.Symbols) != 1 {
				return nil
			}
			call, ok := decl.Symbols[0].Value.(ast.Call)
			if !ok || len(call) != 3 {
				return nil
			}
			domains[call[2]] = true
		}
	}
	if len(seen) != len(targetContainersRules) {
		return nil
	}
	return domains
}

// containerReads returns what the compiled modules read of a container that
// lib.target_containers yields — its name (which the rule itself reads) and the members they
// read — and whether that is all they may read of it (see above); false keeps the containers
// whole.
func containerReads(compiled map[string]*ast.Module) (*readSet, bool) {
	a := &containerAnalysis{members: map[string]bool{"name": true}}
	for _, m := range compiled {
		for _, r := range m.Rules {
			if definesTargetContainers(m, r) {
				continue // the rule itself: containerDomains checked it, as parsed
			}
			for ; r != nil && !a.failed; r = r.Else {
				a.rule(r)
			}
		}
		if a.failed {
			return nil, false
		}
	}
	each := &readSet{}
	for name := range a.members {
		each.add(ast.Ref{ast.StringTerm(name)})
	}
	return each, true
}

// containerAnalysis follows lib.target_containers through one rule at a time.
type containerAnalysis struct {
	members map[string]bool // read of a container
	failed  bool
	// Of the rule being analysed: the variables bound to a container, and the binding
	// expressions' terms, which are their one allowed mention of the rule and of the variable.
	vars    map[ast.Var]bool
	binding map[*ast.Term]bool
}

// rule analyses r: first the bindings of a variable to a container, then every term.
func (a *containerAnalysis) rule(r *ast.Rule) {
	a.vars, a.binding = map[ast.Var]bool{}, map[*ast.Term]bool{}
	keys := map[ast.Var]bool{}
	a.bodies(r.Body, false, func(e *ast.Expr, inArray bool) {
		v, ref, k, ok := containerBinding(e)
		if !ok {
			return
		}
		if inArray {
			a.failed = true
			return
		}
		a.vars[v.Value.(ast.Var)], keys[k] = true, true
		a.binding[v], a.binding[ref] = true, true
	})
	// A key of the set mentioned anywhere else looks the set up by a value.
	count := map[ast.Var]int{}
	ast.WalkVars(r, func(v ast.Var) bool {
		if keys[v] {
			count[v]++
		}
		return false
	})
	for k := range keys {
		if count[k] != 1 {
			a.failed = true
		}
	}
	if a.failed {
		return
	}
	a.walk(r.Head)
	a.walk(r.Body) // (its else, if any, is a rule of its own)
}

// walk checks every term under x, the bodies nested in it included. OPA's visitor reaches
// every kind of term: one this file does not name is walked, not passed over.
func (a *containerAnalysis) walk(x any) { ast.NewGenericVisitor(a.visit).Walk(x) }

// visit checks one node of a rule: a container may be mentioned only as the head of a ref
// with a constant first key, or as object.get's object with a constant key; a ref rooted at
// data may not reach lib.target_containers; the binding expressions' terms are exempt.
func (a *containerAnalysis) visit(x any) bool {
	if a.failed {
		return true
	}
	switch v := x.(type) {
	case *ast.Expr:
		if terms, ok := v.Terms.([]*ast.Term); ok && a.objectGet(terms) {
			for _, w := range v.With {
				a.walk(w)
			}
			return true
		}
	case ast.Call:
		return a.objectGet(v)
	case *ast.Term:
		if a.binding[v] {
			return true
		}
		switch t := v.Value.(type) {
		case ast.Var:
			if a.vars[t] {
				a.failed = true // a container, whole
			}
		case ast.Ref:
			if head, ok := t[0].Value.(ast.Var); ok && a.vars[head] {
				if len(t) < 2 {
					a.failed = true
					return true
				}
				name, ok := t[1].Value.(ast.String)
				if !ok {
					a.failed = true
					return true
				}
				a.members[string(name)] = true
				for _, k := range t[1:] {
					a.walk(k)
				}
				return true // (not the head: a container mentioned whole)
			}
			if t[0].Equal(ast.DefaultRootDocument) && mayReach(t, targetContainers) {
				a.failed = true
			}
		}
	}
	return a.failed
}

// bodies calls fn on every expression of body and of the bodies nested in it (comprehensions,
// every), with whether it lies inside an array comprehension.
func (a *containerAnalysis) bodies(body ast.Body, inArray bool, fn func(*ast.Expr, bool)) {
	for _, e := range body {
		fn(e, inArray)
		ast.WalkClosures(e, func(x any) bool {
			switch c := x.(type) {
			case *ast.ArrayComprehension:
				a.bodies(c.Body, true, fn)
			case *ast.SetComprehension:
				a.bodies(c.Body, inArray, fn)
			case *ast.ObjectComprehension:
				a.bodies(c.Body, inArray, fn)
			case *ast.Every:
				a.bodies(c.Body, inArray, fn)
			}
			return true // the nested ones are walked by the call above
		})
	}
}

// containerBinding matches e against V = data.credgate.lib.target_containers[K], V and K
// variables, either way round, as OPA compiles `some c in lib.target_containers`.
func containerBinding(e *ast.Expr) (v, ref *ast.Term, k ast.Var, ok bool) {
	if !e.IsEquality() || e.Negated || len(e.With) > 0 {
		return nil, nil, "", false
	}
	l, r := e.Operand(0), e.Operand(1)
	if _, isVar := l.Value.(ast.Var); !isVar {
		l, r = r, l
	}
	if _, isVar := l.Value.(ast.Var); !isVar {
		return nil, nil, "", false
	}
	rr, isRef := r.Value.(ast.Ref)
	if !isRef || len(rr) != len(targetContainers)+1 || !rr.HasPrefix(targetContainers) {
		return nil, nil, "", false
	}
	key, isVar := rr[len(targetContainers)].Value.(ast.Var)
	if !isVar {
		return nil, nil, "", false
	}
	return l, r, key, true
}

// objectGet handles object.get(V, key, default, out) with V a container and key a constant
// name or path, which reads V's member key names first; it reports whether it did.
func (a *containerAnalysis) objectGet(call []*ast.Term) bool {
	if len(call) < 4 || call[0].Value.Compare(ast.ObjectGet.Ref()) != 0 {
		return false
	}
	v, ok := call[1].Value.(ast.Var)
	if !ok || !a.vars[v] {
		return false
	}
	var first ast.String
	switch k := call[2].Value.(type) {
	case ast.String:
		first = k
	case *ast.Array:
		if k.Len() == 0 {
			return false // object.get(c, [], d) is c: whole
		}
		s, ok := k.Elem(0).Value.(ast.String)
		if !ok {
			return false
		}
		first = s
	default:
		return false
	}
	a.members[string(first)] = true
	for _, x := range call[2:] {
		a.walk(x)
	}
	return true
}

// mayReach reports whether ref r, rooted at data, may refer to the document at target or to a
// document that holds it: up to its first key computed when it is evaluated, r overlaps target
// (ruleIndex.reached's test).
func mayReach(r, target ast.Ref) bool { return overlaps(r.GroundPrefix(), target) }
