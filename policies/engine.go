package policies

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// Violation is one entry of the deny or warn set: a stable rule id, the credential it concerns
// (empty when none) and a message that says how to fix it.
type Violation struct {
	Rule       string `json:"rule"`
	Credential string `json:"credential,omitempty"`
	Message    string `json:"message"`
}

// Result is what one evaluation found, by the set each violation came from.
type Result struct {
	Deny, Warn []Violation
	// Revision identifies the policies that decided ("sha256:...").
	Revision string
}

// query reads both sets of the entry-point package in one evaluation.
const query = "deny := data.credgate.admission.deny; warn := data.credgate.admission.warn"

// Revision is one compiled, prepared set of policies. It is immutable and safe for concurrent
// use.
type Revision struct {
	id       string
	prepared rego.PreparedEvalQuery
	modules  int
}

// ID is the revision's content hash.
func (r *Revision) ID() string { return r.id }

// Compile parses src's modules as Rego v1, compiles them with its data, and prepares the
// entry-point query: the work done once per revision, never per request.
func Compile(ctx context.Context, src Source) (*Revision, error) {
	modules := make(map[string]*ast.Module, len(src.Modules))
	var errs []error
	for name, text := range src.Modules {
		m, err := ast.ParseModuleWithOpts(name, text, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		modules[name] = m
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("parse policies: %w", errors.Join(errs...))
	}
	compiler := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1)
	if compiler.Compile(modules); compiler.Failed() {
		return nil, fmt.Errorf("compile policies: %w", compiler.Errors)
	}
	prepared, err := rego.New(
		rego.Query(query),
		rego.Compiler(compiler),
		rego.Store(inmem.NewFromObject(src.data())),
		rego.SetRegoVersion(ast.RegoV1),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("prepare policy query: %w", err)
	}
	return &Revision{id: src.Revision(), prepared: prepared, modules: len(modules)}, nil
}

// Evaluate runs the policies on input, the input document of docs/policies.md.
func (r *Revision) Evaluate(ctx context.Context, input ast.Value) (Result, error) {
	rs, err := r.prepared.Eval(ctx, rego.EvalParsedInput(input))
	if err != nil {
		return Result{}, fmt.Errorf("evaluate policies %s: %w", r.id, err)
	}
	res := Result{Revision: r.id}
	if len(rs) == 0 {
		// Both sets are partial rules of the built-ins, so they are always defined.
		return res, fmt.Errorf("evaluate policies %s: data.credgate.admission.deny or .warn is undefined", r.id)
	}
	res.Deny = violations(rs[0].Bindings["deny"])
	res.Warn = violations(rs[0].Bindings["warn"])
	return res, nil
}

// violations turns a set of policy results into Violations, sorted. An entry a user policy
// shaped wrongly is kept, with what could be read of it, rather than dropped.
func violations(set any) []Violation {
	items, _ := set.([]any)
	out := make([]Violation, 0, len(items))
	for _, it := range items {
		v := Violation{Rule: "user-policy"}
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
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Rule != b.Rule {
			return a.Rule < b.Rule
		}
		if a.Credential != b.Credential {
			return a.Credential < b.Credential
		}
		return a.Message < b.Message
	})
	return out
}

// Engine serves the current Revision and replaces it atomically: requests in flight finish
// on the revision they started with.
type Engine struct {
	current atomic.Pointer[Revision]
	// Metrics, when set, times every evaluation.
	Metrics *Metrics
	// Timeout bounds one evaluation (0: none): a policy that would run longer — a user rule's
	// runaway comprehension, an input no limit foresaw — fails the request (500, and the
	// webhook's failurePolicy decides) instead of holding a core. NewEngine sets EvalTimeout.
	Timeout time.Duration
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
	if e.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, e.Timeout)
		defer cancel()
	}
	if e.Metrics == nil {
		return e.current.Load().Evaluate(ctx, input)
	}
	start := time.Now()
	res, err := e.current.Load().Evaluate(ctx, input)
	e.Metrics.evalDuration.Observe(time.Since(start).Seconds())
	return res, err
}
