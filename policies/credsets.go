package policies

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Many rules, built-in and user, depend on the requested credentials only, not on the pod: the
// names of the variables they inject (lib.credential_env_names), which credentials give an
// identity for which cloud, which overlap. Pods of many shapes request the same few
// credentials, so such a rule's value is computed once per set of Credential revisions (the
// ValueCache shares each revision's value between admissions) and handed to every evaluation
// that requests that set, through OPA's virtual document cache: the evaluation finds the
// rule's value there instead of evaluating it.
//
// Compile finds these rules in the compiled modules (credentialSetRules): a rule whose
// definitions, and every rule and function they reach under data, read nothing of the input
// but input.credentials, call no function whose result depends on when, how often or from
// where it is called, and evaluate nothing `with` another input or function. It seeds those of
// them that some other rule (or the query) refers to, and whose value OPA caches whole: rules
// that are not functions, whose head is a name (p := v, p contains v) or a name and a key
// (p[k] := v, p[k] contains v). A seed is hidden inside a `with` (OPA pushes a new frame of
// the cache there), where the rule reads another input.
//
// TestCredentialSetsDecideTheSame holds a seeded evaluation equal to an unseeded one on every
// sample input and a table of conflicts.

// maxCredentialSets and maxSeededCredentials bound the sets whose seeds are kept, by count and
// by the credentials they hold (each a value the ValueCache holds too, usually): past either
// the cache starts afresh. A set's seeds hold its credentials' values; only the latest
// values of a set of names (in a namespace) are kept, so that a Credential's older revisions
// are let go with their seeds when a newer one is evaluated, as the scoped rules' are.
const (
	maxCredentialSets    = 256
	maxSeededCredentials = 1024
)

// seeds are the values, for one credential set, of a revision's seeded rules: values[i] the
// value of refs[i], nil when it is undefined. The zero value seeds nothing.
type seeds struct {
	refs   []ast.Ref
	values []*ast.Term
}

// get returns the value seeded for ref, and whether ref is seeded.
func (s *seeds) get(ref ast.Ref) (*ast.Term, bool) {
	n := len(ref)
	for i, r := range s.refs {
		// The last term first: seeds share their packages' prefixes.
		if len(r) == n && r[n-1].Equal(ref[n-1]) && r.Equal(ref) {
			return s.values[i], true
		}
	}
	return nil, false
}

// seededCache is the virtual document cache of one evaluation: OPA's own, with the seeds
// found in its bottom frame, outside every `with`.
type seededCache struct {
	seeds *seeds
	inner topdown.VirtualCache
	depth int
}

func newSeededCache(s *seeds) *seededCache {
	return &seededCache{seeds: s, inner: topdown.NewVirtualCache()}
}

func (c *seededCache) Push() { c.depth++; c.inner.Push() }

func (c *seededCache) Pop() { c.depth--; c.inner.Pop() }

func (c *seededCache) Get(ref ast.Ref) (*ast.Term, bool) {
	if c.depth == 0 {
		if v, ok := c.seeds.get(ref); ok {
			return v, v == nil
		}
	}
	return c.inner.Get(ref)
}

func (c *seededCache) Put(ref ast.Ref, value *ast.Term) { c.inner.Put(ref, value) }

func (c *seededCache) Keys() []ast.Ref {
	keys := c.inner.Keys()
	if c.depth == 0 {
		for i, r := range c.seeds.refs {
			if c.seeds.values[i] != nil {
				keys = append(keys, r)
			}
		}
	}
	return keys
}

// callerDependent are built-in functions whose effect, or result, depends on how often or
// where they are called, though OPA does not mark them non-deterministic: a rule calling one is
// evaluated in each evaluation. (A served revision's compiler erases print calls; the test
// runner's keeps them, as internal.print.)
var callerDependent = map[string]bool{
	"print":          true,
	"internal.print": true,
	"trace":          true,
	"opa.runtime":    true,
}

// namedRule is a rule's definitions under one name: key is its package's path and the first
// term of its head.
type namedRule struct {
	key  ast.Ref
	defs []*ast.Rule
}

// ruleIndex finds the rules of compiled modules by name.
type ruleIndex struct {
	rules []*namedRule
	byKey map[string]*namedRule
}

func newRuleIndex(compiled map[string]*ast.Module) *ruleIndex {
	x := &ruleIndex{byKey: map[string]*namedRule{}}
	for _, m := range compiled {
		for _, r := range m.Rules {
			name := r.Head.Ref()[0]
			if v, ok := name.Value.(ast.Var); ok {
				name = ast.StringTerm(string(v))
			}
			k := m.Package.Path.Append(name)
			n := x.byKey[k.String()]
			if n == nil {
				n = &namedRule{key: k}
				x.byKey[k.String()] = n
				x.rules = append(x.rules, n)
			}
			n.defs = append(n.defs, r)
		}
	}
	return x
}

// reached returns the rules a ref to data may evaluate: the one it lies under, or those under
// it (a package, or data itself). Up to its first term that is not ground.
func (x *ruleIndex) reached(ref ast.Ref) []*namedRule {
	g := ref.GroundPrefix()
	for i := len(g); i > 1; i-- {
		if n, ok := x.byKey[g[:i].String()]; ok {
			return []*namedRule{n} // (no rule lies under another: OPA refuses the conflict)
		}
	}
	var out []*namedRule
	for _, n := range x.rules {
		if n.key.HasPrefix(g) {
			out = append(out, n)
		}
	}
	return out
}

// credentialSetRules returns the refs of the rules of the compiled modules to seed (see
// above), sorted; queried are the refs the revision's queries read directly (deny and warn
// sets).
func credentialSetRules(compiled map[string]*ast.Module, queried []ast.Ref) []ast.Ref {
	index := newRuleIndex(compiled)
	reached := index.reached
	const (
		visiting = iota + 1
		yes
		no
	)
	state := map[*namedRule]int{}
	var only func(n *namedRule) bool
	only = func(n *namedRule) bool {
		switch state[n] {
		case yes:
			return true
		case no, visiting: // (Rego refuses recursion: a cycle is not credential-only.)
			return false
		}
		state[n] = visiting
		ok := true
		for _, r := range n.defs {
			ast.WalkExprs(r, func(e *ast.Expr) bool {
				if len(e.With) > 0 {
					ok = false
				}
				return !ok
			})
			walkRefs(r, func(ref ast.Ref) bool {
				if !ok {
					return true
				}
				switch {
				case ref[0].Equal(ast.InputRootDocument):
					ok = len(ref) > 1 && ref[1].Equal(credentialsKey)
				case ref[0].Equal(ast.DefaultRootDocument):
					for _, d := range reached(ref) {
						if !only(d) {
							ok = false
							break
						}
					}
				default:
					name := ref.String()
					if b, isBuiltin := ast.BuiltinMap[name]; isBuiltin && (b.IsNondeterministic() || readsTheClock[name] || callerDependent[name]) {
						ok = false
					}
				}
				return false
			})
			if !ok {
				break
			}
		}
		if ok {
			state[n] = yes
		} else {
			state[n] = no
		}
		return ok
	}
	seedable := func(n *namedRule) bool {
		for _, r := range n.defs {
			ref := r.Head.Ref()
			if len(r.Head.Args) > 0 || len(ref) > 2 || len(ref) == 2 && ref[1].IsGround() {
				return false
			}
		}
		return only(n)
	}
	// The rules the queries may evaluate; of them, those that read more than the
	// credentials seed the credential-only rules they refer to, as the queries do.
	evaluated := map[*namedRule]bool{}
	var work []*namedRule
	for _, q := range queried {
		work = append(work, reached(q)...)
	}
	seeded := map[*namedRule]bool{}
	for _, n := range work {
		if seedable(n) {
			seeded[n] = true
		}
	}
	for len(work) > 0 {
		n := work[len(work)-1]
		work = work[:len(work)-1]
		if evaluated[n] || only(n) {
			continue
		}
		evaluated[n] = true
		for _, r := range n.defs {
			walkRefs(r, func(ref ast.Ref) bool {
				if ref[0].Equal(ast.DefaultRootDocument) {
					for _, d := range reached(ref) {
						if seedable(d) {
							seeded[d] = true
						}
						work = append(work, d)
					}
				}
				return false
			})
		}
	}
	var refs []ast.Ref
	for n := range seeded {
		refs = append(refs, n.key)
	}
	slices.SortFunc(refs, func(a, b ast.Ref) int { return a.Compare(b) })
	return refs
}

// credentialSets computes and keeps a revision's seeds per credential set.
type credentialSets struct {
	refs     []ast.Ref
	prepared rego.PreparedEvalQuery

	mu    sync.Mutex
	kept  map[ast.Value][]keptSeeds // by the set's first credential value (nil: none)
	held  int                       // credentials the kept sets hold
	count int                       // sets kept
}

// keptSeeds are the seeds of one credential set: its values, compared by identity, and their
// names with the namespace's.
type keptSeeds struct {
	names string
	creds []ast.Value
	seeds *seeds
}

// newCredentialSets prepares the query of the seeded rules refs, or returns nil if there are
// none. The query is built as terms, never as text: a policy object's name is part of a ref.
func newCredentialSets(prepare func(ast.Body) (rego.PreparedEvalQuery, error), refs []ast.Ref) (*credentialSets, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	body := make(ast.Body, len(refs))
	for i, r := range refs {
		// s<i> = [v<i> | v<i> = ref]: through a comprehension, as a complete rule may be
		// undefined.
		v := ast.VarTerm(fmt.Sprintf("v%d", i))
		body[i] = ast.Equality.Expr(ast.VarTerm(fmt.Sprintf("s%d", i)), ast.ArrayComprehensionTerm(v, ast.NewBody(ast.Equality.Expr(v, ast.NewTerm(r.Copy())))))
		body[i].Index = i
	}
	prepared, err := prepare(body)
	if err != nil {
		return nil, fmt.Errorf("prepare the query of the credential-set rules: %w", err)
	}
	return &credentialSets{refs: refs, prepared: prepared, kept: map[ast.Value][]keptSeeds{}}, nil
}

// seedsFor returns the seeds for input's credentials, or nil when it has none to seed: its
// credentials are not an array of objects, or a seeded rule fails on them (then the
// evaluation meets the same error).
func (c *credentialSets) seedsFor(ctx context.Context, input ast.Value) *seeds {
	if c == nil {
		return nil
	}
	in, _ := input.(ast.Object)
	if in == nil {
		return nil
	}
	t := in.Get(credentialsKey)
	if t == nil {
		return nil
	}
	arr, _ := t.Value.(*ast.Array)
	if arr == nil {
		return nil
	}
	creds := make([]ast.Value, arr.Len())
	for i := range creds {
		// Objects only: compared by identity (each is a pointer), never by ==, which panics on
		// some values.
		o, ok := arr.Elem(i).Value.(ast.Object)
		if !ok {
			return nil
		}
		creds[i] = o
	}
	var first ast.Value
	if len(creds) > 0 {
		first = creds[0]
	}
	c.mu.Lock()
	for _, k := range c.kept[first] {
		if identical(k.creds, creds) {
			c.mu.Unlock()
			return k.seeds
		}
	}
	c.mu.Unlock()
	s, err := c.evaluate(ctx, t)
	if err != nil {
		return nil
	}
	names := setNames(in, creds)
	c.mu.Lock()
	c.forget(names)
	if c.count >= maxCredentialSets || c.held+len(creds) > maxSeededCredentials {
		clear(c.kept)
		c.count, c.held = 0, 0
	}
	c.kept[first] = append(c.kept[first], keptSeeds{names: names, creds: creds, seeds: s})
	c.count++
	c.held += len(creds)
	c.mu.Unlock()
	return s
}

// forget drops the seeds kept for the set of names (older values of its credentials). c.mu is
// held.
func (c *credentialSets) forget(names string) {
	for first, ks := range c.kept {
		kept := ks[:0]
		for _, k := range ks {
			if k.names == names {
				c.count--
				c.held -= len(k.creds)
				continue
			}
			kept = append(kept, k)
		}
		if len(kept) == 0 {
			delete(c.kept, first)
		} else {
			c.kept[first] = kept
		}
	}
}

// setNames names a credential set of input: the namespace's name and the credentials', in
// order (a name that is not a string counts as "").
func setNames(input ast.Object, creds []ast.Value) string {
	var b strings.Builder
	if t := input.Get(namespaceKey); t != nil {
		if ns, ok := t.Value.(ast.Object); ok {
			n, _ := stringMember(ns, nameKey)
			b.WriteString(n)
		}
	}
	for _, c := range creds {
		n, _ := stringMember(c.(ast.Object), nameKey)
		b.WriteByte(0)
		b.WriteString(n)
	}
	return b.String()
}

// identical reports whether a and b hold the same values, in the same order, by identity.
func identical(a, b []ast.Value) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// evaluate evaluates the seeded rules with credentials (an array) as the input's only member.
func (c *credentialSets) evaluate(ctx context.Context, credentials *ast.Term) (*seeds, error) {
	input := ast.NewObject([2]*ast.Term{credentialsKey, credentials})
	rs, err := c.prepared.Eval(ctx, rego.EvalParsedInput(input), noMetrics, rego.EvalGenerateJSON(asTerm))
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 {
		return nil, fmt.Errorf("the credential-set rules' query returned %d results", len(rs))
	}
	s := &seeds{refs: c.refs, values: make([]*ast.Term, len(c.refs))}
	for i := range c.refs {
		t, _ := rs[0].Bindings[fmt.Sprintf("s%d", i)].(*ast.Term)
		if t == nil {
			return nil, fmt.Errorf("the credential-set rules' query bound no s%d", i)
		}
		if arr, ok := t.Value.(*ast.Array); ok && arr.Len() == 1 {
			s.values[i] = arr.Elem(0)
		}
	}
	return s, nil
}

// asTerm hands a query's bindings over as the terms evaluated, unconverted.
func asTerm(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }
