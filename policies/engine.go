package policies

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// Violation is one entry of the deny or warn set: a stable rule id, the credential it concerns
// (empty when none) and a message that says how to fix it.
type Violation struct {
	Rule       string `json:"rule"`
	Credential string `json:"credential,omitempty"`
	Message    string `json:"message"`
	// Policy names the policy object (CredentialPolicy) the violation came from; empty for
	// the built-in rules and the policy files.
	Policy string `json:"policy,omitempty"`
	// Enforce is the action the policy object sets for the rule, if it sets one: it wins
	// over Enforcement.
	Enforce Action `json:"-"`
}

// Result is what one evaluation found, by the set each violation came from.
type Result struct {
	Deny, Warn []Violation
	// Revision identifies the policies that decided ("sha256:...").
	Revision string
}

// planQuery writes the query of a revision: one evaluation binding deny to an array of the
// deny sets of every built-in rule (each a package under credgate.builtin) and of the user
// policies (credgate.admission), and warn likewise; Evaluate reads the sets of both arrays. It
// names only the sets modules define, so that a revision without user policies, or whose user
// policies define deny only, still evaluates. A built-in set is a partial set rule, always
// defined, read directly; the user's are read directly when they are partial set rules too, and
// otherwise through a comprehension, so that a complete rule undefined for some input empties
// its set rather than leaving the whole query undefined. (One array per kind is cheaper than a
// binding per set, or the union of the sets: BenchmarkPolicyEvaluate.)
//
// The credential-scoped packages (scoped.go), which are evaluated per credential, are left out.
//
// The modules of policy objects (objects: module file to object name) are left out too: each
// has a query of its own (objectQuery).
func planQuery(modules map[string]*ast.Module, scopedPkgs []string, objects map[string]string) string {
	type key struct{ pkg, set string }
	partial := map[key]bool{}
	for file, m := range modules {
		pkg := packageName(m)
		if _, isObject := objects[file]; isObject || pkg != EntryPackage && !strings.HasPrefix(pkg, BuiltinPackage+".") || slices.Contains(scopedPkgs, pkg) {
			continue
		}
		for _, r := range m.Rules {
			if set := setOf(r); set != "" {
				k := key{pkg, set}
				p, seen := partial[k]
				partial[k] = (p || !seen) && r.Head.RuleKind() == ast.MultiValue && len(r.Head.Ref()) == 1
			}
		}
	}
	keys := slices.SortedFunc(maps.Keys(partial), func(a, b key) int {
		// The built-ins first, by package; then the user's.
		if (a.pkg == EntryPackage) != (b.pkg == EntryPackage) {
			if a.pkg == EntryPackage {
				return 1
			}
			return -1
		}
		return strings.Compare(a.pkg, b.pkg)
	})
	refs := map[string][]string{}
	for _, k := range keys {
		ref := "data." + k.pkg + "." + k.set
		if !partial[k] {
			ref = "{v | some v in " + ref + "}"
		}
		refs[k.set] = append(refs[k.set], ref)
	}
	return "deny := [" + strings.Join(refs["deny"], ", ") + "]; warn := [" + strings.Join(refs["warn"], ", ") + "]"
}

// objectQuery is the query of the policy object named name whose module is m: its deny and
// warn sets (partial set rules, checkObjectModule made sure), those it defines; "" for none.
func objectQuery(name string, m *ast.Module) string {
	defined := map[string]bool{}
	for _, r := range m.Rules {
		if set := setOf(r); set != "" {
			defined[set] = true
		}
	}
	var parts []string
	for _, set := range []string{"deny", "warn"} {
		if defined[set] {
			parts = append(parts, set+" := data."+ObjectPackage+"["+ast.StringTerm(name).String()+"]."+set)
		}
	}
	return strings.Join(parts, "; ")
}

// Revision is one compiled, prepared set of policies. It is immutable and safe for concurrent
// use.
type Revision struct {
	id       string
	prepared rego.PreparedEvalQuery
	modules  int
	rules    []Rule
	// deterministic: no user module calls a built-in function OPA marks non-deterministic.
	deterministic bool
	// readsManagedFields: some module may read the input's metadata.managedFields.
	readsManagedFields bool
	// reads is what the modules may read of the input, podReads of a Pod admitted, as
	// input.object and input.pod (the same object); nil when they may read all of it.
	reads, podReads *readSet
	// scoped evaluates the credential-scoped rules per credential; nil when there are none.
	scoped *scoped
	// sets keeps the values of the rules that read only input.credentials, per credential
	// set (credsets.go); nil when there are none.
	sets *credentialSets
	// seedsTargets: lib.target_containers is credgate's, and its value is computed in Go
	// (targets.go).
	seedsTargets bool
	// objects are the policy objects served, by name, evaluated in objectOrder.
	objects     map[string]compiledObject
	objectOrder []string
}

// Deterministic reports whether the revision decides the same on the same input whenever it
// is asked, so that a decision may be reused for an identical admission: no user policy calls
// a Rego function whose result depends on when or how often it is called (time.now_ns,
// io.jwt.encode_sign, …: those OPA marks non-deterministic; and those that check certificates
// against the current time). The built-in rules read the clock
// only to compare it with a Credential's status.expiresAt, which bounds a reused decision's
// life instead (see review.Decisions).
func (r *Revision) Deterministic() bool { return r.deterministic }

// readsTheClock are built-in functions whose result depends on when they are called though OPA
// does not mark them non-deterministic: they check certificates against the current time.
var readsTheClock = map[string]bool{
	"crypto.x509.parse_and_verify_certificates":              true,
	"crypto.x509.parse_and_verify_certificates_with_options": true,
}

// nondeterministic returns the first built-in function m calls that is non-deterministic, or
// reads the clock (readsTheClock), or "".
func nondeterministic(m *ast.Module) string {
	var found string
	walkRefs(m, func(ref ast.Ref) bool {
		if found == "" {
			found = nondeterministicCall(ref)
		}
		return found != ""
	})
	return found
}

// nondeterministicCall returns the name of the built-in function ref names if it is
// non-deterministic or reads the clock (readsTheClock), or "".
func nondeterministicCall(ref ast.Ref) string {
	name := ref.String()
	if b, ok := ast.BuiltinMap[name]; ok && (b.IsNondeterministic() || readsTheClock[name]) {
		return b.Name
	}
	return ""
}

// ID is the revision's content hash.
func (r *Revision) ID() string { return r.id }

// Rules lists the rules the revision serves, built-in and user (see Rule), built-in first.
func (r *Revision) Rules() []Rule { return slices.Clone(r.rules) }

// parserOptions parse Rego v1 with its # METADATA annotations.
var parserOptions = ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true}

// Compile parses src's modules as Rego v1, compiles them with its data, and prepares the
// query: the work done once per revision, never per request. A module that is not one of the
// built-in files and declares a reserved package, or data under data.credgate, is refused
// (a *ReservedError with the file and line). Compile does not evaluate anything: Load and
// the Watcher run the canary (Revision.Canary) before serving a revision.
func Compile(ctx context.Context, src Source) (*Revision, error) {
	modules := make(map[string]*ast.Module, len(src.Modules))
	objectFiles := make(map[string]string, len(src.Objects)) // module file to object name
	for name := range src.Objects {
		objectFiles[ObjectFile(name)] = name
	}
	objects, err := compileObjects(src)
	if err != nil {
		return nil, err
	}
	builtin := map[string]bool{}
	deterministic := true
	var errs []error
	for name, text := range src.Modules {
		m, err := ast.ParseModuleWithOpts(name, text, parserOptions)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		builtin[name] = isBuiltin(name, text)
		if _, ok := objectFiles[name]; ok {
			if err := checkObjectModule(name, m); err != nil {
				errs = append(errs, err)
				continue
			}
			deterministic = deterministic && nondeterministic(m) == ""
		} else if !builtin[name] {
			if err := checkUserModule(name, m, false); err != nil {
				errs = append(errs, err)
				continue
			}
			if err := readsOnlyItsOwn(name, m, false); err != nil {
				errs = append(errs, err)
				continue
			}
			deterministic = deterministic && nondeterministic(m) == ""
		}
		modules[name] = m
	}
	if err := checkUserData("policy data", src.Data); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		return nil, fmt.Errorf("parse policies: %w", errors.Join(errs...))
	}
	listed := rules(modules) // from the modules as parsed: the compiler rewrites rule heads
	for i, r := range listed {
		if obj, ok := objectFiles[r.File]; ok {
			if a, ok := src.Objects[obj].Enforcement[r.ID]; ok {
				listed[i].Enforcement = string(a)
			}
		}
	}
	for file, obj := range objectFiles {
		if m := modules[file]; m != nil {
			moveObjectModule(obj, m)
		}
	}
	// As parsed: the compiler binds refs to local variables. lib.target_containers' own
	// iteration of the containers is added below, once the compiled modules say how.
	domains := containerDomains(modules)
	reads := inputReads(modules, domains)
	shadowed := objectGetShadowed(modules) // (then a container's object.get may return it whole)
	scopedPkgs := credentialScoped(modules, builtin)
	query := planQuery(modules, scopedPkgs, objectFiles)
	compiler := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1).WithCapabilities(capabilities())
	if compiler.Compile(modules); compiler.Failed() {
		return nil, fmt.Errorf("compile policies: %w", compiler.Errors)
	}
	// Of a target container, every policy may read only members it names, or all of it
	// (containers.go).
	each, narrow := containerReads(compiler.Modules)
	for _, path := range containerPaths {
		if path = append([]string{"pod"}, path...); narrow && domains != nil && !shadowed {
			reads.addEach(path, each)
		} else {
			reads.add(stringsRef(path))
		}
	}
	if err := typeCheckObjects(modules, objectFiles); err != nil {
		return nil, err
	}
	if err := checkScoped(scopedPkgs, compiler.Modules); err != nil {
		return nil, err
	}
	sc, err := newScoped(ctx, compiler, src.data(), modules, scopedPkgs) // the compiler works on copies
	if err != nil {
		return nil, err
	}
	store := inmem.NewFromObject(src.data())
	prepare := func(query string) (rego.PreparedEvalQuery, error) {
		return rego.New(rego.Query(query), rego.Compiler(compiler), rego.Store(store), rego.SetRegoVersion(ast.RegoV1)).PrepareForEval(ctx)
	}
	prepared, err := prepare(query)
	if err != nil {
		return nil, fmt.Errorf("prepare policy query: %w", err)
	}
	queries := []string{query}
	for file, name := range objectFiles {
		q := objectQuery(name, modules[file])
		if q == "" {
			continue
		}
		queries = append(queries, q)
		o := objects[name]
		if o.query, err = prepare(q); err != nil {
			return nil, fmt.Errorf("prepare the query of %s: %w", file, err)
		}
		o.queried = true
		objects[name] = o
	}
	sets := newCredentialSets(credentialSetRules(compiler.Modules, queriedRefs(queries)))
	return &Revision{sets: sets, seedsTargets: domains != nil, id: src.Revision(), prepared: prepared, modules: len(modules), rules: listed, deterministic: deterministic,
		readsManagedFields: readsManagedFields(reads), reads: wholeAsNil(reads), podReads: podReads(reads),
		scoped: sc, objects: objects, objectOrder: slices.Sorted(maps.Keys(objects))}, nil
}

// Evaluate runs the policies on input, the input document of docs/policies.md.
func (r *Revision) Evaluate(ctx context.Context, input ast.Value) (Result, error) {
	res, err := r.evaluate(ctx, input, false)
	if err != nil {
		return Result{}, fmt.Errorf("evaluate policies %s: %w", r.id, err)
	}
	return res, nil
}

// evaluate evaluates input; all evaluates every policy object, selected or not (the canary,
// on a sample input), and keeps the violations of those selected only.
func (r *Revision) evaluate(ctx context.Context, input ast.Value, all bool) (Result, error) {
	set, targets := r.sets.begin(input), r.targetsOf(input)
	rs, err := eval(ctx, r.prepared, evalOptions(input, set, targets)...)
	if err != nil {
		return Result{}, err
	}
	if len(rs) == 0 {
		// Every set the query reads is a partial set rule or a comprehension: always defined.
		return Result{}, errors.New("the deny and warn sets are undefined")
	}
	res := Result{
		Deny:     violations(rs[0].Bindings["deny"], ""),
		Warn:     violations(rs[0].Bindings["warn"], ""),
		Revision: r.id,
	}
	if err := r.evaluateObjects(ctx, input, set, targets, all, &res); err != nil {
		return Result{}, err
	}
	if r.scoped != nil {
		more, err := r.scoped.evaluate(ctx, input)
		if err != nil {
			return Result{}, err
		}
		res.Deny, res.Warn = mergeViolations(res.Deny, more.Deny), mergeViolations(res.Warn, more.Warn)
	}
	r.sets.commit(set) // (every evaluation succeeded)
	return res, nil
}

// eval evaluates query with opts, cancelled when ctx is done, as OPA's Eval is. Unless told
// how an evaluation is cancelled, OPA starts a goroutine for each to wait on ctx, and wakes it
// when the evaluation ends: on two cores that hand-off cost about a tenth of an evaluation of
// the built-in rules (BenchmarkPolicyEvaluate). context.AfterFunc cancels the same way with no
// goroutine until ctx is done. TestEngineTimeout holds an evaluation to its deadline.
func eval(ctx context.Context, query rego.PreparedEvalQuery, opts ...rego.EvalOption) (rego.ResultSet, error) {
	c := topdown.NewCancel()
	stop := context.AfterFunc(ctx, c.Cancel)
	defer stop()
	return query.Eval(ctx, append(opts, rego.EvalExternalCancel(c))...)
}

// evalOptions are the options of an evaluation of input, in set (nil: none), with
// lib.target_containers' value targets (nil: evaluated as written).
func evalOptions(input ast.Value, set *setEvaluation, targets *ast.Term) []rego.EvalOption {
	if set == nil && targets == nil {
		return []rego.EvalOption{rego.EvalParsedInput(input), noMetrics}
	}
	return []rego.EvalOption{rego.EvalParsedInput(input), noMetrics, rego.EvalVirtualCache(set.cache(targets))}
}

// targetsOf returns lib.target_containers' value for input when r seeds it, else nil.
func (r *Revision) targetsOf(input ast.Value) *ast.Term {
	if !r.seedsTargets {
		return nil
	}
	return targetContainersOf(input)
}

// queriedRefs returns the refs to data the queries read.
func queriedRefs(queries []string) []ast.Ref {
	var refs []ast.Ref
	for _, q := range queries {
		body, err := ast.ParseBodyWithOpts(q, parserOptions)
		if err != nil {
			continue // (prepared already: it parses)
		}
		walkRefs(body, func(ref ast.Ref) bool {
			if ref[0].Equal(ast.DefaultRootDocument) {
				refs = append(refs, ref)
			}
			return false
		})
	}
	return refs
}

// mergeViolations returns the violations of a and b, sorted, each once, as violations orders them.
func mergeViolations(a, b []Violation) []Violation {
	if len(b) == 0 {
		return a
	}
	out := append(slices.Clip(a), b...)
	slices.SortFunc(out, compareViolations)
	return slices.Compact(out)
}

// violations turns an array of sets of policy results into Violations, sorted, each once. An
// entry a user policy shaped wrongly is kept, with what could be read of it, rather than
// dropped.
func violations(sets any, policy string) []Violation {
	var items []any
	all, _ := sets.([]any)
	for _, set := range all {
		s, _ := set.([]any)
		items = append(items, s...)
	}
	out := make([]Violation, 0, len(items))
	for _, it := range items {
		v := Violation{Rule: "user-policy", Policy: policy}
		switch t := it.(type) {
		case map[string]any:
			if s, ok := t["rule"].(string); ok && s != "" {
				v.Rule = s
			}
			v.Credential, _ = t["credential"].(string)
			v.Message, _ = t["message"].(string)
		case string:
			v.Message = t
		}
		if v.Message == "" {
			v.Message = fmt.Sprintf("refused by policy rule %s", v.Rule)
		}
		out = append(out, v)
	}
	slices.SortFunc(out, compareViolations)
	return slices.Compact(out)
}

// compareViolations orders violations by rule, credential, message, policy.
func compareViolations(a, b Violation) int {
	if c := strings.Compare(a.Rule, b.Rule); c != 0 {
		return c
	}
	if c := strings.Compare(a.Credential, b.Credential); c != 0 {
		return c
	}
	if c := strings.Compare(a.Message, b.Message); c != 0 {
		return c
	}
	if c := strings.Compare(a.Policy, b.Policy); c != 0 {
		return c
	}
	return strings.Compare(string(a.Enforce), string(b.Enforce))
}

// Engine serves the current Revision and replaces it atomically: requests in flight finish
// on the revision they started with. It keeps a few recent inputs that evaluated without error
// (at most 16, each at most 256 KiB, at most one a second: see recentInputs), which the
// Watcher's canary evaluates each new revision against.
type Engine struct {
	current atomic.Pointer[Revision]
	// Metrics, when set, times every evaluation.
	Metrics *Metrics
	// Timeout bounds one evaluation (0: none): a policy that would run longer — a user rule's
	// runaway comprehension, an input no limit foresaw — fails the request (500, and the
	// webhook's failurePolicy decides) instead of holding a core. NewEngine sets EvalTimeout.
	Timeout time.Duration

	recent recentInputs
}

// EvalTimeout is an engine's default Timeout: far above what the built-in rules take on the
// largest input credgate admits, well below the webhooks' 5-second timeout.
const EvalTimeout = 2 * time.Second

// NewEngine returns an engine serving rev, evaluations bounded by EvalTimeout.
func NewEngine(rev *Revision) *Engine {
	e := &Engine{Timeout: EvalTimeout}
	e.current.Store(rev)
	return e
}

// Current returns the revision being served.
func (e *Engine) Current() *Revision { return e.current.Load() }

// Swap makes rev the revision served from now on.
func (e *Engine) Swap(rev *Revision) { e.current.Store(rev) }

// Evaluate evaluates input with the current revision, within e.Timeout.
func (e *Engine) Evaluate(ctx context.Context, input ast.Value) (Result, error) {
	res, kept, err := e.evaluate(ctx, e.current.Load(), input, dryRun(input))
	if kept {
		e.recent.keep(input)
	}
	return res, err
}

// EvaluateInput evaluates in with the current revision, as Evaluate does its value, but parses
// a Pod's object only as far as that revision's policies may read it (Input.Value): the members
// none reads are never built. The canary keeps the whole input.
func (e *Engine) EvaluateInput(ctx context.Context, in *Input) (Result, error) {
	rev := e.current.Load()
	value, err := in.value(rev.reads, rev.podReads)
	if err != nil {
		return Result{}, err
	}
	res, kept, err := e.evaluate(ctx, rev, value, in.DryRun)
	if kept {
		if rev.reads != nil {
			value, _ = in.Value() // parsed once already: it does not fail
		}
		if value != nil {
			e.recent.keep(value)
		}
	}
	return res, err
}

// evaluate evaluates input with rev within e.Timeout, and reports whether the canary is to
// keep the input: the evaluation succeeded, the request is no dry run (dry), and none was kept
// in the last recentInterval.
func (e *Engine) evaluate(ctx context.Context, rev *Revision, input ast.Value, dry bool) (Result, bool, error) {
	if e.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.Timeout)
		defer cancel()
	}
	start := time.Now()
	res, err := rev.Evaluate(ctx, input)
	if e.Metrics != nil {
		e.Metrics.evalDuration.Observe(time.Since(start).Seconds())
	}
	return res, err == nil && !dry && e.recent.claim(start), err
}

// dryRun reports whether input is that of a dry-run request: those are not kept for the
// canary, so that a tenant cannot fill it with inputs no object stands behind.
func dryRun(input ast.Value) bool {
	in, ok := input.(ast.Object)
	if !ok {
		return false
	}
	req := in.Get(ast.StringTerm("request"))
	if req == nil {
		return false
	}
	r, ok := req.Value.(ast.Object)
	if !ok {
		return false
	}
	d := r.Get(ast.StringTerm("dryRun"))
	return d != nil && d.Value.Compare(ast.Boolean(true)) == 0
}

// RecentInputs returns the recent inputs the engine keeps for the canary, newest first.
func (e *Engine) RecentInputs() []ast.Value { return e.recent.snapshot() }

// noMetrics is the option of every evaluation on the admission path: no metrics, which OPA
// otherwise allocates for each.
var noMetrics = rego.EvalMetrics(metrics.NoOp())
