package policies

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"path"
	"slices"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// The bundled sample inputs: input documents as credgate builds them (docs/policies.md),
// from the examples — the training Job's pod, the Job itself updated in a namespace that
// requires temporary credentials with a credential of every cloud, a pod requesting a
// credential that does not exist, a CronJob with an expired, admin, not-ready credential.
//
//go:embed canary/*.json
var canaryFiles embed.FS

// CanaryInput is one input of a canary run, with a name for messages.
type CanaryInput struct {
	Name  string
	Value ast.Value
	// Recent: an input of an admission (a tenant's), not a bundled sample. A policy object
	// is tried on the recent inputs of the namespaces it selects only, as it is evaluated.
	Recent bool
}

// SampleInputs returns the bundled sample inputs, named "sample <file>". Their values are
// parsed once and shared (values are immutable).
func SampleInputs() []CanaryInput { return slices.Clone(sampleInputs()) }

var sampleInputs = sync.OnceValue(func() []CanaryInput {
	entries, err := canaryFiles.ReadDir("canary")
	if err != nil {
		panic(fmt.Sprintf("read embedded sample inputs: %v", err)) // the embed directive guarantees it
	}
	inputs := make([]CanaryInput, 0, len(entries))
	for _, e := range entries {
		b, err := canaryFiles.ReadFile(path.Join("canary", e.Name()))
		if err != nil {
			panic(fmt.Sprintf("read embedded sample input %s: %v", e.Name(), err))
		}
		v, err := parseJSON(b)
		if err != nil {
			panic(fmt.Sprintf("parse embedded sample input %s: %v", e.Name(), err)) // TestSampleInputs parses them
		}
		inputs = append(inputs, CanaryInput{Name: "sample " + e.Name(), Value: v})
	}
	return inputs
})

// recentCanaryInputs names the engine's recent inputs by what they admitted.
func (e *Engine) recentCanaryInputs() []CanaryInput {
	values := e.RecentInputs()
	out := make([]CanaryInput, len(values))
	for i, v := range values {
		out[i] = CanaryInput{Name: fmt.Sprintf("recent input %d (%s)", i+1, describeInput(v)), Value: v, Recent: true}
	}
	return out
}

// describeInput says what an input admitted, "CREATE Pod ml-team/train", without any value
// of the object.
func describeInput(v ast.Value) string {
	at := func(keys ...string) string {
		x := v
		for _, k := range keys {
			o, ok := x.(ast.Object)
			if !ok {
				return ""
			}
			if x = valueAt(o, k); x == nil {
				return ""
			}
		}
		s, _ := x.(ast.String)
		return string(s)
	}
	return fmt.Sprintf("%s %s %s/%s", at("request", "operation"), at("request", "kind", "kind"),
		at("request", "namespace"), at("request", "name"))
}

// CanaryError is a revision's evaluation failing on a canary input.
type CanaryError struct {
	// Input names the input it failed on.
	Input string
	Err   error
}

func (e *CanaryError) Error() string { return fmt.Sprintf("on %s: %v", e.Input, e.Err) }

func (e *CanaryError) Unwrap() error { return e.Err }

// Canary evaluates r on each of inputs, each within timeout (0: none), as it would serve them,
// and returns the first failure as a *CanaryError: a revision that compiles can still fail
// every evaluation (two complete rules giving different values, a function giving two
// outputs, a runaway rule), and serving it would fail every admission.
func (r *Revision) Canary(ctx context.Context, inputs []CanaryInput, timeout time.Duration) error {
	for _, in := range inputs {
		if err := r.canaryOne(ctx, in, timeout); err != nil {
			return &CanaryError{Input: in.Name, Err: err}
		}
	}
	return nil
}

func (r *Revision) canaryOne(ctx context.Context, in CanaryInput, timeout time.Duration) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	_, err := r.evaluate(ctx, in.Value, !in.Recent)
	return err
}

// CanaryObject evaluates the policy object named name on its own, on each of inputs (each
// within timeout): every sample input, whatever its namespace, and the recent inputs of the
// namespaces it selects — a tenant's admission elsewhere, which it never evaluates, cannot
// fail it. It returns the first failure as a *CanaryError.
func (r *Revision) CanaryObject(ctx context.Context, name string, inputs []CanaryInput, timeout time.Duration) error {
	o, ok := r.objects[name]
	if !ok || !o.queried {
		return nil
	}
	for _, in := range inputs {
		if in.Recent && o.selector != nil && !o.selector.Matches(inputNamespaceLabels(in.Value)) {
			continue
		}
		err := func() error {
			ctx := ctx
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			_, err := o.query.Eval(ctx, rego.EvalParsedInput(in.Value))
			return err
		}()
		if err != nil {
			return &CanaryError{Input: in.Name, Err: fmt.Errorf("policy %s: %w", name, err)}
		}
	}
	return nil
}

// errorLocation is where err arose in the policies, when OPA says: an evaluation error's
// location, a parse or compile error's, a reserved package's.
func errorLocation(err error) (file string, line int, ok bool) {
	var te *topdown.Error
	if errors.As(err, &te) && te.Location != nil {
		return te.Location.File, te.Location.Row, true
	}
	var re *ReservedError
	if errors.As(err, &re) {
		return re.File, re.Line, true
	}
	var ae *ast.Error
	if errors.As(err, &ae) && ae.Location != nil {
		return ae.Location.File, ae.Location.Row, true
	}
	var aes ast.Errors
	if errors.As(err, &aes) {
		for _, e := range aes {
			if e.Location != nil {
				return e.Location.File, e.Location.Row, true
			}
		}
	}
	return "", 0, false
}
