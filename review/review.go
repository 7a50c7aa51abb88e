package review

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"gomodules.xyz/jsonpatch/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/credgate/credgate/credential"
	"github.com/credgate/credgate/mutate"
	"github.com/credgate/credgate/policies"
	"github.com/credgate/credgate/workload"
)

// Rule ids of the refusals this package makes itself, before policy: requests credgate cannot
// read. They always deny.
const (
	RuleInvalidCredential = "invalid-credential"
	RuleCredentialLabel   = "invalid-credential-label"
	RuleContainers        = "invalid-containers-annotation"
)

// Violation is one reason to refuse a pod: a stable rule id, the credential it concerns
// (empty when none), and a message that says how to fix it.
type Violation = policies.Violation

// Request is one object to admit.
type Request struct {
	// Namespace is the namespace the object is created in (the admission request's, which a
	// pod created by a controller may not carry itself).
	Namespace string
	// Object is the decoded Pod, Job, CronJob or apps/v1 workload. Review mutates it in place.
	Object runtime.Object
	// Raw is Object as submitted, JSON; when nil it is encoded from Object.
	Raw []byte
	// What the admission request says of itself, for policies.
	Operation string
	Name      string
	User      string
	Groups    []string
	GVK       schema.GroupVersionKind
	DryRun    bool
	// DecideOnly is for callers that admit or refuse but never patch (a validating webhook):
	// the object is still mutated, so that the decision is the same, but no patch is computed.
	DecideOnly bool
}

// Decision is the outcome of a review that did not fail.
type Decision struct {
	// Credentials are the names the pod requests, sorted.
	Credentials []string
	// Violations refuse the pod when not empty; Object is then left unchanged.
	Violations []Violation
	// Warned are violations whose rule is enforced as warn: the pod is admitted and the
	// client is shown them.
	Warned []Violation
	// Audited are violations whose rule is enforced as audit: admitted silently, recorded.
	Audited []Violation
	// Warnings are returned to the client of an admitted request: the warned violations and
	// anything mutate left alone.
	Warnings []string
	// Mutated reports whether Object was passed through mutate.
	Mutated bool
	// Patch is the JSON patch that turns the submitted object into the mutated one: only
	// credgate's additions (see mutate.Patch); empty when nothing changed.
	Patch []jsonpatch.Operation
	// Resolved are the requested credentials as injected, sorted by name.
	Resolved []credential.Resolved
	// PolicyRevision identifies the policies that decided; empty when none ran.
	PolicyRevision string
	// DryRun is the request's dry-run flag: evaluated the same, flagged for the record.
	DryRun bool
	// Kind is the kind of the object reviewed, for messages.
	Kind string
}

// Denied reports whether the decision refuses the object.
func (d *Decision) Denied() bool { return len(d.Violations) > 0 }

// Message is the refusal users see: every violation at once, each with its rule id.
func (d *Decision) Message() string {
	var b strings.Builder
	kind := d.Kind
	if kind == "" {
		kind = "Pod"
	}
	b.WriteString("credgate refused the " + kind + ": ")
	for i, v := range d.Violations {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString("[" + v.Rule + "] " + v.Message)
	}
	return b.String()
}

// Evaluator evaluates the policy input of one admission; *policies.Engine is the one in use.
type Evaluator interface {
	Evaluate(ctx context.Context, input ast.Value) (policies.Result, error)
}

// Namespaces reads the labels of a namespace, for policies (input.namespace.labels).
type Namespaces interface {
	// Labels returns the namespace's labels; a namespace that does not exist has none.
	Labels(ctx context.Context, namespace string) (map[string]string, error)
}

// StaticNamespaces holds namespace labels by name, for offline evaluation and tests.
type StaticNamespaces map[string]map[string]string

// Labels implements Namespaces.
func (s StaticNamespaces) Labels(_ context.Context, namespace string) (map[string]string, error) {
	return s[namespace], nil
}

// Reviewer reviews admission requests.
type Reviewer struct {
	Store       credential.Store
	Namespaces  Namespaces // nil: policies see no namespace labels
	Policy      Evaluator
	Enforcement policies.Enforcement
	// Values, when set, keeps the policy input values of Credentials between requests.
	Values *policies.ValueCache
}

// Review admits req.Object, mutating it in place. A returned error is either bad input
// (wrapping workload.ErrMalformed or workload.ErrUnsupportedKind) or an internal failure;
// refusals are Violations. The order is fixed: find the pod, read what it requests, resolve,
// decide (policy), mutate.
func (r *Reviewer) Review(ctx context.Context, req Request) (Decision, error) {
	if len(req.Raw) > MaxObjectBytes {
		return Decision{}, fmt.Errorf("%w: the object is %d bytes; credgate reviews objects of at most %d", workload.ErrMalformed, len(req.Raw), MaxObjectBytes)
	}
	t, err := workload.PodTemplate(req.Object)
	if err != nil {
		return Decision{}, err
	}
	raw := req.Raw
	if raw == nil {
		if raw, err = json.Marshal(req.Object); err != nil {
			return Decision{}, fmt.Errorf("encode submitted object: %w", err)
		}
	}
	workload.InheritLabels(req.Object, t)
	if v := overLimits(t); v != nil {
		return Decision{DryRun: req.DryRun, Kind: req.GVK.Kind, Violations: []Violation{*v}}, nil
	}
	names, problems := workload.Requested(t.Meta.Labels)
	d := Decision{Credentials: names, DryRun: req.DryRun, Kind: req.GVK.Kind}
	for _, p := range problems {
		d.Violations = append(d.Violations, Violation{Rule: RuleCredentialLabel, Message: p})
	}
	if len(names) == 0 {
		return d, nil
	}
	targets, problem := workload.TargetContainers(t)
	if problem != "" {
		d.Violations = append(d.Violations, Violation{Rule: RuleContainers, Message: problem})
	}
	resolved, missing, invalid, err := r.resolve(ctx, req.Namespace, names)
	if err != nil {
		return Decision{}, err
	}
	d.Resolved = resolved
	d.Violations = append(d.Violations, invalid...)
	if v := overInjections(resolved, len(targets)); v != nil {
		d.Violations = append(d.Violations, *v)
		bound(&d)
		return d, nil
	}

	if err := r.decide(ctx, req, raw, t, targets, missing, &d); err != nil {
		return Decision{}, err
	}
	redact(&d, t)
	bound(&d)
	if d.Denied() {
		return d, nil
	}
	if err := ctx.Err(); err != nil {
		return Decision{}, fmt.Errorf("review: %w", err)
	}
	for _, c := range mutate.Apply(t, resolved, targets) {
		d.Warnings = append(d.Warnings, "credential "+c.Credential+": "+c.Message)
	}
	d.Warnings = boundWarnings(d.Warnings)
	d.Mutated = true
	if req.DecideOnly {
		return d, nil
	}
	if err := ctx.Err(); err != nil {
		return Decision{}, fmt.Errorf("review: %w", err)
	}
	mutated, err := json.Marshal(req.Object)
	if err != nil {
		return Decision{}, fmt.Errorf("encode mutated object: %w", err)
	}
	if d.Patch, err = mutate.Patch(raw, mutated); err != nil {
		return Decision{}, err
	}
	return d, nil
}

// decide evaluates the policies and files their violations by enforcement action.
func (r *Reviewer) decide(ctx context.Context, req Request, raw []byte, t workload.Template, targets, missing []string, d *Decision) error {
	in := policies.Input{
		Operation: req.Operation, Namespace: req.Namespace, Name: req.Name,
		User: req.User, Groups: req.Groups,
		Group: req.GVK.Group, Version: req.GVK.Version, Kind: req.GVK.Kind, DryRun: req.DryRun,
		Object: raw, PodPath: t.Path, PodLabels: t.Meta.Labels,
		Credentials: d.Resolved, Missing: missing, Targets: targets, Cache: r.Values,
	}
	if r.Namespaces != nil {
		labels, err := r.Namespaces.Labels(ctx, req.Namespace)
		if err != nil {
			return fmt.Errorf("get namespace %s: %w", req.Namespace, err)
		}
		in.NamespaceLabels = labels
	}
	if len(missing) > 0 {
		available, err := r.Store.Names(ctx, req.Namespace)
		if err != nil {
			return err
		}
		in.Available = available
	}
	value, err := in.Value()
	if err != nil {
		return err
	}
	res, err := r.Policy.Evaluate(ctx, value)
	if err != nil {
		return err
	}
	c := r.Enforcement.Classify(res)
	d.PolicyRevision = res.Revision
	d.Violations = append(d.Violations, c.Deny...)
	d.Warned, d.Audited = c.Warn, c.Audit
	for _, v := range c.Warn {
		d.Warnings = append(d.Warnings, "["+v.Rule+"] "+v.Message)
	}
	return nil
}

// resolve looks up and resolves every requested credential. Not-found names are returned in
// missing; Credentials the schema would refuse become violations; anything else is an error.
func (r *Reviewer) resolve(ctx context.Context, ns string, names []string) (resolved []credential.Resolved, missing []string, invalid []Violation, err error) {
	resolved = make([]credential.Resolved, 0, len(names))
	for _, name := range names {
		c, err := r.Store.Get(ctx, ns, name)
		if apierrors.IsNotFound(err) {
			missing = append(missing, name)
			continue
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("get credential %s/%s: %w", ns, name, err)
		}
		rc, err := credential.Resolve(c)
		if errors.Is(err, credential.ErrInvalid) {
			invalid = append(invalid, Violation{Rule: RuleInvalidCredential, Credential: name,
				Message: err.Error() + " (fix the Credential object)"})
			continue
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("resolve credential %s/%s: %w", ns, name, err)
		}
		resolved = append(resolved, rc)
	}
	return resolved, missing, invalid, nil
}
