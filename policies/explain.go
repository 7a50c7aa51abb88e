package policies

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	"k8s.io/apimachinery/pkg/labels"
)

// Firing is one violation a revision found, and the rule body that produced it: which
// expressions, evaluated as they were when it fired, made the rule add the violation to its
// set. It holds no value of the input: the violation's rule id and credential name, and the
// policy's own source text.
type Firing struct {
	// Set is the set the violation was added to: "deny" or "warn".
	Set string `json:"set"`
	// Rule and Credential are the violation's (its message is not kept: the decision has it).
	Rule       string `json:"rule"`
	Credential string `json:"credential,omitempty"`
	// File and Line locate the rule's head.
	File string `json:"file"`
	Line int    `json:"line"`
	// Exprs are the expressions of the rule's body, in order, that held when it fired.
	Exprs []FiringExpr `json:"exprs"`
	// Count is how many violations of this rule and credential the body added (with other
	// messages: for other bindings of its variables).
	Count int `json:"count"`
}

// FiringExpr is one expression of a rule body, as written in its file.
type FiringExpr struct {
	File string `json:"file"`
	Line int    `json:"line"`
	// Text is the expression's first line as written (a longer one ends in " …").
	Text string `json:"text"`
}

// Explain evaluates input again, traced, and returns what made each violation fire: for each
// deny or warn rule body that added one, the expressions of that body. It evaluates exactly as
// Evaluate does — the credential-scoped rules per credential — and reports firings in the order
// of the violations (rule, credential), then of their files and lines.
func (r *Revision) Explain(ctx context.Context, input ast.Value) ([]Firing, error) {
	t := newFiringTracer()
	if _, err := r.prepared.Eval(ctx, rego.EvalParsedInput(input), rego.EvalQueryTracer(t)); err != nil {
		return nil, fmt.Errorf("explain: %w", err)
	}
	if r.scoped != nil {
		in, _ := input.(ast.Object)
		var ns ast.Value = ast.Null{}
		var creds *ast.Array
		if in != nil {
			if v := in.Get(namespaceKey); v != nil {
				ns = v.Value
			}
			if v := in.Get(credentialsKey); v != nil {
				creds, _ = v.Value.(*ast.Array)
			}
		}
		for i := range arrayLen(creds) {
			one := ast.NewObject([2]*ast.Term{credentialsKey, ast.ArrayTerm(creds.Elem(i))}, [2]*ast.Term{namespaceKey, ast.NewTerm(ns)})
			clear(t.bodies) // query ids start again with each evaluation
			if _, err := r.scoped.prepared.Eval(ctx, rego.EvalParsedInput(one), rego.EvalQueryTracer(t)); err != nil {
				return nil, fmt.Errorf("explain: %w", err)
			}
		}
	}
	// The policy objects that select the input's namespace, each its own query.
	var nsLabels labels.Set
	for _, name := range r.objectOrder {
		o := r.objects[name]
		if !o.queried {
			continue
		}
		if o.selector != nil {
			if nsLabels == nil {
				nsLabels = inputNamespaceLabels(input)
			}
			if !o.selector.Matches(nsLabels) {
				continue
			}
		}
		clear(t.bodies)
		if _, err := o.query.Eval(ctx, rego.EvalParsedInput(input), rego.EvalQueryTracer(t)); err != nil {
			return nil, fmt.Errorf("explain policy %s: %w", name, err)
		}
	}
	out := t.firings
	slices.SortFunc(out, func(a, b firing) int {
		return cmp.Or(strings.Compare(a.Rule, b.Rule), strings.Compare(a.Credential, b.Credential),
			strings.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), strings.Compare(a.Set, b.Set),
			strings.Compare(a.message, b.message))
	})
	var firings []Firing
	var last firing
	for i, f := range out {
		same := i > 0 && last.Rule == f.Rule && last.Credential == f.Credential && last.Set == f.Set && last.File == f.File && last.Line == f.Line
		switch {
		case same && last.message == f.message:
			// the same violation again (another binding, or the body evaluated again)
		case same:
			firings[len(firings)-1].Count++
		default:
			f.Count = 1
			firings = append(firings, f.Firing)
		}
		last = f
	}
	return firings, nil
}

// firing is a Firing with the message of its violation, which tells violations apart.
type firing struct {
	Firing
	message string
}

// firingTracer follows the bodies of deny and warn rules as they evaluate: the last
// evaluation of each of a body's expressions, and at each exit of the body (a solution) what
// it added to its set.
type firingTracer struct {
	bodies  map[uint64]*body // by the body's query id
	firings []firing
}

type body struct {
	rule  *ast.Rule
	set   string
	exprs map[int]*ast.Expr // the last evaluated, by index in the body
}

func newFiringTracer() *firingTracer { return &firingTracer{bodies: map[uint64]*body{}} }

func (*firingTracer) Enabled() bool { return true }

// Config asks for the bindings of each event: the rule's head is read from them at its exit.
func (*firingTracer) Config() topdown.TraceConfig { return topdown.TraceConfig{PlugLocalVars: true} }

func (t *firingTracer) TraceEvent(e topdown.Event) {
	switch e.Op {
	case topdown.EnterOp:
		rule, ok := e.Node.(*ast.Rule)
		if !ok {
			return
		}
		if set := firingSet(rule); set != "" {
			t.bodies[e.QueryID] = &body{rule: rule, set: set, exprs: map[int]*ast.Expr{}}
		}
	case topdown.EvalOp:
		b := t.bodies[e.QueryID]
		if expr, ok := e.Node.(*ast.Expr); ok && b != nil {
			b.exprs[expr.Index] = expr
		}
	case topdown.ExitOp:
		b := t.bodies[e.QueryID]
		if rule, ok := e.Node.(*ast.Rule); !ok || b == nil || rule != b.rule {
			return
		}
		exprs := t.exprsOf(b)
		for _, v := range headViolations(b.rule, e.Locals) {
			f := firing{Firing: Firing{Set: b.set, Rule: v.Rule, Credential: v.Credential, Exprs: exprs}, message: v.Message}
			if loc := b.rule.Location; loc != nil {
				f.File, f.Line = loc.File, loc.Row
			}
			t.firings = append(t.firings, f)
		}
	}
}

// firingSet is the set a rule adds to, if the query reads it: a deny or warn rule of a package
// of credgate's namespace — the entry package, a built-in rule's, a policy object's — but its
// helpers' and test fixtures'.
func firingSet(rule *ast.Rule) string {
	if rule.Module == nil {
		return ""
	}
	pkg := packageName(rule.Module)
	if !under(pkg, ReservedRoot) || pkg == ReservedRoot || under(pkg, LibPackage) || under(pkg, TestPackage) {
		return ""
	}
	return setOf(rule)
}

// exprsOf lists the expressions b evaluated last, in body order, as written: the compiler
// rewrites an expression into several (some c in xs; a call in an argument; x in s), each
// located at the part of the expression it evaluates, so a location inside another is left
// out. So are the expressions the compiler made up for the head (its call to lib.violation):
// the head is the firing's own location.
func (t *firingTracer) exprsOf(b *body) []FiringExpr {
	idx := make([]int, 0, len(b.exprs))
	for i := range b.exprs {
		idx = append(idx, i)
	}
	slices.Sort(idx)
	var locs []*ast.Location
	head := b.rule.Head.Location
	for _, i := range idx {
		loc := b.exprs[i].Location
		if loc == nil || loc.File == "" || head != nil && within(loc, head) {
			continue
		}
		locs = append(locs, loc)
	}
	var out []FiringExpr
	for i, loc := range locs {
		inside := slices.ContainsFunc(locs, func(other *ast.Location) bool {
			return other != loc && within(loc, other) && (!within(other, loc) || slices.Index(locs, other) < i)
		})
		if inside {
			continue // part of another, or the same as an earlier one
		}
		text, rest, more := strings.Cut(string(loc.Text), "\n")
		text = strings.TrimSpace(text)
		if more && strings.TrimSpace(rest) != "" {
			text += " …"
		}
		out = append(out, FiringExpr{File: loc.File, Line: loc.Row, Text: text})
	}
	slices.SortStableFunc(out, func(a, b FiringExpr) int { return cmp.Compare(a.Line, b.Line) })
	return out
}

// within says whether location a lies inside location b (same file, b's text covering it).
func within(a, b *ast.Location) bool {
	if a.File != b.File || a.Offset < b.Offset {
		return false
	}
	return a.Offset+len(a.Text) <= b.Offset+len(b.Text)
}

// headViolations are the violations a rule's head adds for the bindings of one solution of
// its body: a partial set rule's key, a partial object rule's value, a complete rule's
// members.
func headViolations(rule *ast.Rule, locals *ast.ValueMap) []Violation {
	plug := func(t *ast.Term) ast.Value {
		v, err := ast.TransformVars(t.Value, func(x ast.Var) (ast.Value, error) {
			if v := locals.Get(x); v != nil {
				return v, nil
			}
			return x, nil
		})
		if err != nil {
			return nil
		}
		val, _ := v.(ast.Value)
		return val
	}
	var items []ast.Value
	h := rule.Head
	switch {
	case h.Key != nil && h.Value == nil: // deny contains v
		items = append(items, plug(h.Key))
	case h.Value != nil && len(h.Ref()) > 1 || h.Key != nil: // warn["a"] := v
		items = append(items, plug(h.Value))
	case h.Value != nil: // deny := {v, ...}
		switch c := plug(h.Value).(type) {
		case ast.Set:
			c.Foreach(func(t *ast.Term) { items = append(items, t.Value) })
		case *ast.Array:
			c.Foreach(func(t *ast.Term) { items = append(items, t.Value) })
		case ast.Object:
			c.Foreach(func(_, t *ast.Term) { items = append(items, t.Value) })
		}
	}
	var out []Violation
	for _, v := range items {
		if v == nil || !v.IsGround() {
			continue
		}
		out = append(out, violationOf(v))
	}
	return out
}

// violationOf reads the rule id and credential of a set's member as the engine does: an
// object's "rule" and "credential", "user-policy" when it names no rule.
func violationOf(v ast.Value) Violation {
	out := Violation{Rule: "user-policy"}
	o, ok := v.(ast.Object)
	if !ok {
		if str, ok := v.(ast.String); ok {
			out.Message = string(str)
		}
		return out
	}
	if s, ok := stringMember(o, ast.StringTerm("rule")); ok && s != "" {
		out.Rule = s
	}
	out.Credential, _ = stringMember(o, ast.StringTerm("credential"))
	out.Message, _ = stringMember(o, ast.StringTerm("message"))
	return out
}

func arrayLen(a *ast.Array) int {
	if a == nil {
		return 0
	}
	return a.Len()
}
