package policies

import (
	"hash/maphash"
	"slices"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Many rules, built-in and user, depend on the requested credentials only, not on the pod: the
// names of the variables they inject (lib.credential_env_names), which credentials give an
// identity for which cloud, which overlap. Pods of many shapes request the same few
// credentials, so such a rule's value is kept per set of Credential revisions (the
// ValueCache shares each revision's value between admissions) and handed to every evaluation
// that requests that set, through OPA's virtual document cache: the evaluation finds the
// rule's value there instead of evaluating it. The values are those an evaluation found: OPA
// puts each rule's value in that cache as it evaluates it, and the values of the seeded rules
// an evaluation put there, outside every `with`, are kept for the set when the whole
// evaluation succeeded. So a value is only ever computed where an evaluation needs it, on its
// budget, and an evaluation that fails keeps nothing.
//
// Compile finds these rules in the compiled modules (credentialSetRules): a rule whose
// definitions, and every rule and function they reach under data, read nothing of the input
// but input.credentials, call no function whose result depends on when, how often or from
// where it is called, and evaluate nothing `with` another input or function. It seeds those of
// them that some other rule (or the query) refers to, and whose value OPA caches whole: rules
// that are not functions, whose head is a name (p := v, p contains v) or a name and a key
// (p[k] := v, p[k] contains v), and whose document is their own (no package under them, no
// ref head above them). A seed is hidden inside a `with` (OPA pushes a new frame of the cache
// there), where the rule reads another input. OPA puts a partial rule's value whole only where
// something reads it whole: looked up by key alone, it is evaluated per key, and nothing is
// kept (conflicting-env reads lib.credential_env whole for that reason).
//
// TestCredentialSetsDecideTheSame holds a seeded evaluation equal to an unseeded one on every
// input of the built-in rules' tests and every canary sample.

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

// reached returns the rules a ref to data may evaluate, up to its first term that is not
// ground: those it lies under, and those under it. Both ways: a rule p[k] := v of one package
// and the rules of a package under p (…p.q) make one document, as do a rule p.q.r := v and a
// package's rule p.q.
func (x *ruleIndex) reached(ref ast.Ref) []*namedRule {
	g := ref.GroundPrefix()
	var out []*namedRule
	for _, n := range x.rules {
		if overlaps(n.key, g) {
			out = append(out, n)
		}
	}
	return out
}

// alone reports whether no other rule lies under n's name, or n under another's: whether n's
// value is n's rules' alone.
func (x *ruleIndex) alone(n *namedRule) bool {
	for _, m := range x.rules {
		if m != n && overlaps(m.key, n.key) {
			return false
		}
	}
	return true
}

// overlaps reports whether the documents at refs a and b share a part: one lies under the
// other, or they are one.
func overlaps(a, b ast.Ref) bool { return a.HasPrefix(b) || b.HasPrefix(a) }

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
					if nondeterministicCall(ref) != "" || callerDependent[ref.String()] {
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
		if !index.alone(n) {
			return false
		}
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
	seeded := map[*namedRule]bool{}
	var work []*namedRule
	refer := func(ref ast.Ref) {
		for _, d := range reached(ref) {
			if seedable(d) {
				seeded[d] = true
			}
			work = append(work, d)
		}
	}
	for _, q := range queried {
		refer(q)
	}
	evaluated := map[*namedRule]bool{}
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
					refer(ref)
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

// maxCredentialSets and maxSeededBytes bound the sets whose values are kept: by count, and by
// the approximate size of the credential values and rule values they hold. Past either, the
// sets used least recently are let go. Only a Credential's latest value (in a namespace, by name) is
// kept: a set holding an older one is let go when one holding a newer one is kept, so that a
// Credential's older revisions go with their values, as the ValueCache's and the scoped
// rules' do.
//
// A set holds its credentials' values (which the ValueCache may have let go) and the rules'
// values: tens of kilobytes for a pod requesting ten. make bench-scale, where a thousand
// namespaces each use their own set once, shows what the bound costs.
const (
	maxCredentialSets = 64
	maxSeededBytes    = 8 << 20
)

// seeds are the values of a revision's seeded rules (credentialSets.refs) for one credential
// set, those found so far: values[i] is refs[i]'s value when known[i] (nil: undefined). Both
// are nil until one is found. Immutable once kept.
type seeds struct {
	values []*ast.Term
	known  []bool
}

// get returns the value known for seeded rule i, and whether one is.
func (s *seeds) get(i int) (*ast.Term, bool) {
	if s == nil || s.known == nil || !s.known[i] {
		return nil, false
	}
	return s.values[i], true
}

// setEvaluation is what the evaluations of one input (the main query's and the policy
// objects') share: the set's kept seeds, and the seeded rules' values they found that were
// not kept.
type setEvaluation struct {
	sets  *credentialSets
	key   uint64
	creds []ast.Value
	ns    string
	kept  *seeds
	found seeds
}

// get returns the value known for seeded rule i, and whether one is.
func (se *setEvaluation) get(i int) (*ast.Term, bool) {
	if v, ok := se.kept.get(i); ok {
		return v, true
	}
	return se.found.get(i)
}

// seededCache is the virtual document cache of one evaluation: OPA's own, which finds, outside
// every `with`, the set's known values and lib.target_containers' (targets.go), and notes the
// values of the set's rules the evaluation finds.
type seededCache struct {
	set     *setEvaluation // nil: none
	targets *ast.Term      // lib.target_containers' value; nil: evaluated as written
	inner   topdown.VirtualCache
	depth   int
}

// cache returns a virtual document cache for one evaluation in se (nil: none), with
// lib.target_containers' value targets (nil: none).
func (se *setEvaluation) cache(targets *ast.Term) *seededCache {
	return &seededCache{set: se, targets: targets, inner: topdown.NewVirtualCache()}
}

func (c *seededCache) Push() { c.depth++; c.inner.Push() }

func (c *seededCache) Pop() { c.depth--; c.inner.Pop() }

func (c *seededCache) Get(ref ast.Ref) (*ast.Term, bool) {
	if c.depth == 0 && c.targets != nil && ref.Equal(targetContainers) {
		return c.targets, false
	}
	if c.depth == 0 && c.set != nil {
		if i := c.set.sets.index(ref); i >= 0 {
			if v, ok := c.set.get(i); ok {
				return v, v == nil
			}
		}
	}
	return c.inner.Get(ref)
}

// Put: OPA puts a rule's value, whole, at the rule's ref (a complete rule's when it finds it,
// nil when undefined; a partial rule's full extent); other puts are keys below a rule's ref.
func (c *seededCache) Put(ref ast.Ref, value *ast.Term) {
	c.inner.Put(ref, value)
	if c.depth != 0 || c.set == nil {
		return
	}
	se := c.set
	i := se.sets.index(ref)
	if i < 0 {
		return
	}
	if _, ok := se.get(i); ok {
		return
	}
	if se.found.known == nil {
		n := len(se.sets.refs)
		se.found = seeds{values: make([]*ast.Term, n), known: make([]bool, n)}
	}
	se.found.values[i], se.found.known[i] = value, true
}

func (c *seededCache) Keys() []ast.Ref {
	keys := c.inner.Keys()
	if c.depth == 0 && c.targets != nil {
		keys = append(keys, targetContainers)
	}
	if c.depth == 0 && c.set != nil {
		for i, r := range c.set.sets.refs {
			if v, ok := c.set.get(i); ok && v != nil {
				keys = append(keys, r)
			}
		}
	}
	return keys
}

// credentialSets keeps a revision's seeds per credential set.
type credentialSets struct {
	refs []ast.Ref // the rules seeded
	hash maphash.Seed

	mu    sync.Mutex
	kept  map[uint64]*keptSet // by the hash of the namespace's and the credentials' names
	bytes int
	seq   uint64
}

// keptSet is one credential set's seeds: its values (compared by identity), its namespace's
// name and its credentials', and about how many bytes it holds.
type keptSet struct {
	creds []ast.Value
	ns    string
	names []string
	seeds *seeds
	bytes int
	seq   uint64 // when it was last used: the least recently used go first
}

func newCredentialSets(refs []ast.Ref) *credentialSets {
	if len(refs) == 0 {
		return nil
	}
	return &credentialSets{refs: refs, hash: maphash.MakeSeed(), kept: map[uint64]*keptSet{}}
}

// index returns the index of ref among the rules seeded, or -1.
func (c *credentialSets) index(ref ast.Ref) int {
	n := len(ref)
	for i, r := range c.refs {
		// The last term first: seeds share their packages' prefixes.
		if len(r) == n && r[n-1].Equal(ref[n-1]) && r.Equal(ref) {
			return i
		}
	}
	return -1
}

// begin starts the evaluations of input: with the seeds kept for its credentials, noting the
// values they find. It returns nil when input has nothing to seed: no credentials array, or
// one holding something but objects.
func (c *credentialSets) begin(input ast.Value) *setEvaluation {
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
	se := &setEvaluation{sets: c, creds: make([]ast.Value, arr.Len())}
	if t := in.Get(namespaceKey); t != nil {
		if ns, ok := t.Value.(ast.Object); ok {
			se.ns, _ = stringMember(ns, nameKey)
		}
	}
	var h maphash.Hash
	h.SetSeed(c.hash)
	h.WriteString(se.ns)
	for i := range se.creds {
		// Objects only: compared by identity (each is a pointer), never by ==, which panics on
		// some values.
		o, ok := arr.Elem(i).Value.(ast.Object)
		if !ok {
			return nil
		}
		se.creds[i] = o
		name, _ := stringMember(o, nameKey)
		h.WriteByte(0)
		h.WriteString(name)
	}
	se.key = h.Sum64()
	c.mu.Lock()
	if k := c.kept[se.key]; k != nil && identical(k.creds, se.creds) {
		se.kept = k.seeds
		c.touch(k)
	}
	c.mu.Unlock()
	return se
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

// commit keeps the values se's evaluations found, which all succeeded. A set larger than an
// eighth of maxSeededBytes (1 MiB) is not kept, rather than let go of others' to make room.
func (c *credentialSets) commit(se *setEvaluation) {
	if se == nil || se.found.known == nil {
		return // nothing found that was not kept
	}
	// Sized before taking the lock: each value shared (a credential, which the rules' values
	// hold by reference) counted once.
	seen := make(map[ast.Value]struct{})
	names := make([]string, len(se.creds))
	credBytes := 0
	for i, v := range se.creds {
		names[i], _ = stringMember(v.(ast.Object), nameKey)
		credBytes += approxSize(v, seen)
	}
	foundBytes := make([]int, len(se.found.values))
	total := credBytes
	for i, v := range se.found.values {
		if se.found.known[i] && v != nil {
			foundBytes[i] = approxSize(v.Value, seen)
			total += foundBytes[i]
		}
	}
	if total > maxSeededBytes/8 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := c.kept[se.key]
	if k == nil || !identical(k.creds, se.creds) {
		if k != nil {
			c.drop(se.key)
		}
		c.dropOlder(se.ns, names, se.creds)
		k = &keptSet{creds: se.creds, ns: se.ns, names: names, seeds: &seeds{values: make([]*ast.Term, len(c.refs)), known: make([]bool, len(c.refs))}, bytes: credBytes}
		c.kept[se.key] = k
		c.bytes += credBytes
	}
	c.touch(k)
	// A new seeds value: the one kept may be in use.
	merged := &seeds{values: slices.Clone(k.seeds.values), known: slices.Clone(k.seeds.known)}
	for i, known := range se.found.known {
		if known && !merged.known[i] {
			merged.values[i], merged.known[i] = se.found.values[i], true
			k.bytes += foundBytes[i]
			c.bytes += foundBytes[i]
		}
	}
	k.seeds = merged
	for len(c.kept) > maxCredentialSets || c.bytes > maxSeededBytes && len(c.kept) > 1 {
		c.dropOldest()
	}
}

// touch marks k used now. c.mu is held.
func (c *credentialSets) touch(k *keptSet) {
	c.seq++
	k.seq = c.seq
}

// drop lets the set kept under key go. c.mu is held.
func (c *credentialSets) drop(key uint64) {
	if k := c.kept[key]; k != nil {
		c.bytes -= k.bytes
		delete(c.kept, key)
	}
}

// dropOlder lets go every set of namespace ns holding a value of a credential named in names
// other than the one in creds (older, usually). c.mu is held.
func (c *credentialSets) dropOlder(ns string, names []string, creds []ast.Value) {
	for key, k := range c.kept {
		if k.ns != ns {
			continue
		}
		for i, n := range k.names {
			if j := slices.Index(names, n); j >= 0 && creds[j] != k.creds[i] {
				c.drop(key)
				break
			}
		}
	}
}

// dropOldest lets go the set used longest ago. c.mu is held.
func (c *credentialSets) dropOldest() {
	var oldest uint64
	var found *keptSet
	for key, k := range c.kept {
		if found == nil || k.seq < found.seq {
			oldest, found = key, k
		}
	}
	if found != nil {
		c.drop(oldest)
	}
}

// approxSize is about how many bytes v takes beyond the composite values in seen (by
// identity), which it adds to: its strings and numbers, and a few words per term.
func approxSize(v ast.Value, seen map[ast.Value]struct{}) int {
	n := 0
	visit := func(v ast.Value) bool {
		switch x := v.(type) {
		case ast.Object, ast.Set, *ast.Array: // pointers: compared by identity
			if _, ok := seen[x]; ok {
				return true
			}
			seen[x] = struct{}{}
		case ast.String:
			n += len(x)
		case ast.Number:
			n += len(x)
		}
		n += 48
		return false
	}
	if visit(v) {
		return 0
	}
	ast.WalkTerms(v, func(t *ast.Term) bool { return visit(t.Value) })
	return n
}
