package review

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
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
	// Old is the object as it was before an UPDATE (a CronJob's), decoded; nil for a CREATE.
	Old runtime.Object
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
	// the object is still mutated, so that the decision is the same, but no patch is computed;
	// and an earlier injection is not stripped: the object is judged as it will be stored.
	DecideOnly bool
}

// Decision is the outcome of a review that did not fail.
type Decision struct {
	// Credentials are the names the pod requests, sorted.
	Credentials []string
	// Violations refuse the pod when not empty; Object then holds no injection, and Patch is
	// empty.
	Violations []Violation
	// Warned are violations whose rule is enforced as warn: the pod is admitted and the
	// client is shown them.
	Warned []Violation
	// Audited are violations whose rule is enforced as audit: admitted silently, recorded.
	Audited []Violation
	// Warnings are returned to the client of an admitted request: the warned violations and
	// anything mutate left alone.
	Warnings []string
	// Mutated reports whether the credentials requested were admitted: injected into a Pod
	// by mutate, or, for a workload, checked (mutate ran on a copy of its pod template, for
	// the warnings) — its pods get them when they are created.
	Mutated bool
	// Stripped is what was removed of an injection by an earlier version of credgate that the
	// pod, or the pod template, carried (mutate.Strip); nil when there was none.
	Stripped *mutate.Stripped
	// Patch is the JSON patch that turns the submitted object into the mutated one: what
	// credgate takes away (mutate.Rewrite: an earlier injection, credential labels following
	// a CronJob's), then what it adds (mutate.Patch: labels copied into a workload's pod
	// template; a Pod's credentials). Empty when nothing changed.
	Patch []jsonpatch.Operation
	// Resolved are the requested credentials as injected, sorted by name.
	Resolved []credential.Resolved
	// PolicyRevision identifies the policies that decided; empty when none ran.
	PolicyRevision string
	// DryRun is the request's dry-run flag: evaluated the same, flagged for the record.
	DryRun bool
	// Kind is the kind of the object reviewed, for messages.
	Kind string

	// inputs are what the decision read, for Decisions.
	inputs inputs
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
	for i, text := range distinct(d.Violations) {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(text)
	}
	return b.String()
}

// distinct returns "[rule] message" of each violation of vs, each text once: two credentials
// tripping one rule with one message are said once.
func distinct(vs []Violation) []string {
	out := make([]string, 0, len(vs))
	var seen map[string]bool
	for _, v := range vs {
		text := "[" + v.Rule + "] " + v.Message
		if len(vs) > 1 {
			if seen[text] {
				continue
			}
			if seen == nil {
				seen = make(map[string]bool, len(vs))
			}
			seen[text] = true
		}
		out = append(out, text)
	}
	return out
}

// Evaluator evaluates the policy input of one admission; *policies.Engine is the one in use.
type Evaluator interface {
	Evaluate(ctx context.Context, input ast.Value) (policies.Result, error)
}

// InputEvaluator is an Evaluator that builds the input value itself, as the policies it
// evaluates need it: *policies.Engine parses only what they may read of a Pod.
type InputEvaluator interface {
	EvaluateInput(ctx context.Context, in *policies.Input) (policies.Result, error)
}

// evaluate evaluates in with r.Policy.
func (r *Reviewer) evaluate(ctx context.Context, in *policies.Input) (policies.Result, error) {
	if e, ok := r.Policy.(InputEvaluator); ok {
		return e.EvaluateInput(ctx, in)
	}
	value, err := in.Value()
	if err != nil {
		return policies.Result{}, err
	}
	return r.Policy.Evaluate(ctx, value)
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
	// Values, when set, keeps each Credential revision resolved, and its policy input value,
	// between requests.
	Values *policies.ValueCache
}

// Review admits req.Object, mutating it in place. A returned error is either bad input
// (wrapping workload.ErrMalformed or workload.ErrUnsupportedKind) or an internal failure;
// refusals are Violations. The order is fixed: find the pod, read what it requests, resolve,
// strip an earlier injection, decide (policy), mutate.
//
// A Pod gets its credentials. A workload (Job, CronJob, apps/v1) is decided the same way, on
// its pod template, but only gets the credential labels copied into that template
// (workload.InheritLabels): its pods get the credentials when they are created, from the
// Credentials as they are then. What mutate would leave alone is still reported, from a copy.
func (r *Reviewer) Review(ctx context.Context, req Request) (Decision, error) {
	if len(req.Raw) > MaxObjectBytes {
		return Decision{}, fmt.Errorf("%w: the object is %d bytes; credgate reviews objects of at most %d", workload.ErrMalformed, len(req.Raw), MaxObjectBytes)
	}
	ts, err := workload.PodTemplates(req.Object)
	if err != nil {
		return Decision{}, err
	}
	raw := req.Raw
	if raw == nil {
		if raw, err = json.Marshal(req.Object); err != nil {
			return Decision{}, fmt.Errorf("encode submitted object: %w", err)
		}
	}
	if len(ts) == 1 {
		return r.review(ctx, req, raw, ts[0], ts, nil)
	}
	// A workload of several pod templates (a PyTorchJob's replica types, a RayCluster's head
	// and worker groups): each is decided on its own, as the pods it will run, and the
	// object is refused if any of them is; what each says is prefixed with the template's
	// name. The patches touch each its own template.
	all := Decision{DryRun: req.DryRun, Kind: req.GVK.Kind}
	// The object is parsed for policies once, not once per template.
	shared := &parsedObject{raw: raw}
	for _, t := range ts {
		if err := ctx.Err(); err != nil {
			return Decision{}, fmt.Errorf("review: %w", err)
		}
		d, err := r.review(ctx, req, raw, t, ts, shared)
		if err != nil {
			return Decision{}, err
		}
		all.merge(&d, t.Name)
	}
	slices.Sort(all.Credentials)
	all.Credentials = slices.Compact(all.Credentials)
	if all.Denied() {
		all.Patch = nil
	}
	bound(&all)
	return all, nil
}

// merge adds d, the decision on the pod template name, to the decision on its object.
func (all *Decision) merge(d *Decision, name string) {
	prefix := func(vs []Violation) []Violation {
		out := slices.Clone(vs)
		for i := range out {
			if name != "" {
				out[i].Message = name + ": " + out[i].Message
			}
		}
		return out
	}
	all.Credentials = append(all.Credentials, d.Credentials...)
	all.Violations = append(all.Violations, prefix(d.Violations)...)
	all.Warned = append(all.Warned, prefix(d.Warned)...)
	all.Audited = append(all.Audited, prefix(d.Audited)...)
	for _, w := range d.Warnings {
		if name != "" {
			w = name + ": " + w
		}
		all.Warnings = append(all.Warnings, w)
	}
	all.Mutated = all.Mutated || d.Mutated
	if d.Stripped != nil {
		if all.Stripped == nil {
			all.Stripped = &mutate.Stripped{}
		}
		all.Stripped.Env += d.Stripped.Env
		all.Stripped.Mounts += d.Stripped.Mounts
		all.Stripped.Volumes += d.Stripped.Volumes
		all.Stripped.PullSecrets += d.Stripped.PullSecrets
	}
	all.Patch = append(all.Patch, d.Patch...)
	for _, c := range d.Resolved {
		if !slices.ContainsFunc(all.Resolved, func(a credential.Resolved) bool { return a.Name == c.Name }) {
			all.Resolved = append(all.Resolved, c)
		}
	}
	slices.SortFunc(all.Resolved, func(a, b credential.Resolved) int { return strings.Compare(a.Name, b.Name) })
	if d.PolicyRevision != "" {
		all.PolicyRevision = d.PolicyRevision
	}
}

// parsedObject is an object's JSON, parsed for the policy input once for all its templates.
type parsedObject struct {
	raw   []byte
	value ast.Value
}

// of returns raw parsed: shared when raw is the object's JSON as the first template parsed it,
// parsed afresh when a template's review changed it (took an earlier injection away); nil for
// an object of one template, which the policy input parses itself (policies.Input.Parsed).
func (p *parsedObject) of(raw []byte) (ast.Value, error) {
	if p == nil {
		return nil, nil
	}
	if len(raw) != len(p.raw) || len(raw) == 0 || &raw[0] != &p.raw[0] {
		return policies.ParseObject(raw)
	}
	if p.value == nil {
		v, err := policies.ParseObject(raw)
		if err != nil {
			return nil, err
		}
		p.value = v
	}
	return p.value, nil
}

// review reviews t, one pod template of req.Object (or the Pod itself), whose JSON is raw; all
// are the object's templates (whose literal values messages may not quote), shared its JSON
// parsed for policies (nil: parsed here).
func (r *Reviewer) review(ctx context.Context, req Request, raw []byte, t workload.Template, all []workload.Template, shared *parsedObject) (Decision, error) {
	var err error
	pod := workload.IsPod(req.Object)
	// before is the template as submitted, kept when credgate may take something away from it
	// (a label following a CronJob's, an earlier injection): Rewrite derives that part of the
	// patch from it. The validating webhook takes nothing away: it judges the object as stored.
	var before *corev1.PodTemplateSpec
	if _, earlier := t.Meta.Annotations[workload.InjectedAnnotation]; (req.Old != nil || earlier) && !req.DecideOnly {
		before = &corev1.PodTemplateSpec{ObjectMeta: *t.Meta.DeepCopy(), Spec: *t.Spec.DeepCopy()}
	}
	if req.Old != nil {
		workload.FollowLabels(req.Old, req.Object, t)
	}
	// The labels before InheritLabels adds any: what Rewrite compares, and what the patch of
	// what credgate adds starts from. A Pod inherits none.
	labels := t.Meta.Labels
	if !pod {
		labels = maps.Clone(labels)
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
	targets, problem := workload.TargetContainers(t)
	if len(names) > 0 && problem != "" {
		d.Violations = append(d.Violations, Violation{Rule: RuleContainers, Message: problem})
	}
	var resolved []credential.Resolved
	var missing []string
	if len(names) > 0 {
		var invalid []Violation
		if resolved, missing, invalid, err = r.resolve(ctx, req.Namespace, names); err != nil {
			return Decision{}, err
		}
		d.Resolved = resolved
		d.Violations = append(d.Violations, invalid...)
		if v := overInjections(resolved, len(targets)); v != nil {
			d.Violations = append(d.Violations, *v)
			bound(&d)
			return d, nil
		}
	}

	if before != nil {
		if problem == "" {
			if err := r.stripEarlier(ctx, req, t, resolved, targets, &d); err != nil {
				return Decision{}, err
			}
		}
		after := corev1.PodTemplateSpec{ObjectMeta: *t.Meta, Spec: *t.Spec}
		after.Labels = labels
		ops, err := mutate.Rewrite(t.Path, before, &after)
		if err != nil {
			return Decision{}, err
		}
		if raw, err = mutate.ApplyPatch(raw, ops); err != nil {
			return Decision{}, fmt.Errorf("take away from the submitted object: %w", err)
		}
		d.Patch = ops
	}

	if len(names) > 0 {
		parsed, err := shared.of(raw)
		if err != nil {
			return Decision{}, err
		}
		if err := r.decide(ctx, req, raw, parsed, t, targets, missing, &d); err != nil {
			return Decision{}, err
		}
	}
	redact(&d, all)
	bound(&d)
	if d.Denied() {
		d.Patch = nil
		return d, nil
	}
	if err := ctx.Err(); err != nil {
		return Decision{}, fmt.Errorf("review: %w", err)
	}
	recorded := mutate.Record(t, labels)
	if len(names) > 0 {
		into := t
		if !pod {
			into = workload.Template{Meta: t.Meta.DeepCopy(), Spec: t.Spec.DeepCopy(), Path: t.Path}
		}
		for _, c := range mutate.Apply(into, resolved, targets) {
			d.Warnings = append(d.Warnings, "credential "+c.Credential+": "+c.Message)
		}
		d.Warnings = boundWarnings(d.Warnings)
		d.Mutated = true
		r.recordInputs(req, missing, &d)
	}
	if req.DecideOnly {
		d.Patch = nil
		return d, nil
	}
	if !d.Mutated && pod && d.Stripped == nil {
		return d, nil // nothing requested, nothing changed
	}
	if err := ctx.Err(); err != nil {
		return Decision{}, fmt.Errorf("review: %w", err)
	}
	added, err := mutate.Patch(raw, t, recorded)
	if err != nil {
		return Decision{}, fmt.Errorf("patch: %w", err)
	}
	d.Patch = append(d.Patch, added...)
	return d, nil
}

// stripEarlier takes away an injection by an earlier version of credgate that t carries — a pod
// created from a template it injected, or a workload's template — before policy sees the pod,
// so that what is decided, and injected, is the current Credentials alone (mutate.Strip, with
// the credentials its annotation lists as they are now). A Pod whose annotation is the one the
// current credentials give carries nothing to take away (a reinvocation); an annotation not of
// credgate's form is no injection of credgate's, and mutate rewrites it.
func (r *Reviewer) stripEarlier(ctx context.Context, req Request, t workload.Template, resolved []credential.Resolved, targets []string, d *Decision) error {
	earlier := t.Meta.Annotations[workload.InjectedAnnotation]
	names, ok := mutate.InjectedNames(earlier)
	if !ok || workload.IsPod(req.Object) && earlier == mutate.Annotation(resolved) {
		return nil
	}
	names = slices.DeleteFunc(names, func(n string) bool { return !workload.IsCredentialName(n) })
	if len(names) > MaxCredentialLabels {
		names = names[:MaxCredentialLabels]
	}
	listed, err := r.listed(ctx, req.Namespace, names, resolved)
	if err != nil {
		return err
	}
	requested := make([]string, 0, len(resolved))
	for i := range resolved {
		requested = append(requested, resolved[i].Name)
	}
	s := mutate.Strip(t, listed, requested, targets)
	d.Stripped = &s
	d.Warnings = append(d.Warnings, strippedWarning(req.GVK.Kind, names, s))
	return nil
}

// listed resolves names, the credentials an earlier injection's annotation lists, as they are
// now: those requested again are already resolved; a name with no Credential now, or an
// invalid one, is left out.
func (r *Reviewer) listed(ctx context.Context, ns string, names []string, resolved []credential.Resolved) ([]credential.Resolved, error) {
	var out []credential.Resolved
	var lookup []string
	for _, n := range names {
		if i := slices.IndexFunc(resolved, func(c credential.Resolved) bool { return c.Name == n }); i >= 0 {
			out = append(out, resolved[i])
		} else if !slices.Contains(lookup, n) {
			lookup = append(lookup, n)
		}
	}
	more, _, _, err := r.resolve(ctx, ns, lookup)
	if err != nil {
		return nil, err
	}
	return append(out, more...), nil
}

// strippedWarning tells the client that an earlier injection, of the credentials names, was
// taken away, and what to do. It quotes no value of the object: names are credential names.
func strippedWarning(kind string, names []string, s mutate.Stripped) string {
	if kind == "" {
		kind = "Pod"
	}
	var parts []string
	for _, p := range []struct {
		n    int
		what string
	}{{s.Env, "variable"}, {s.Volumes, "volume"}, {s.Mounts, "mount"}, {s.PullSecrets, "image-pull secret"}} {
		switch {
		case p.n == 1:
			parts = append(parts, "1 "+p.what)
		case p.n > 1:
			parts = append(parts, fmt.Sprintf("%d %ss", p.n, p.what))
		}
	}
	removed := "its annotation"
	if len(parts) > 0 {
		removed = strings.Join(parts, ", ") + " and its annotation"
	}
	of := ""
	if len(names) > 0 {
		of = " of " + strings.Join(names, ", ")
	}
	if kind == "Pod" {
		return fmt.Sprintf("this pod carries an injection%s by an earlier version of credgate (annotation %s), from a pod template it injected: "+
			"credgate removed %s, so that the pod gets the current credentials alone; re-create the workload that created the pod from its manifest "+
			"so that its template no longer carries it (docs/credentials.md)", of, workload.InjectedAnnotation, removed)
	}
	return fmt.Sprintf("this %s's pod template carries an injection%s by an earlier version of credgate (annotation %s): "+
		"credgate removed %s; credentials are now injected into each pod when it is created (docs/credentials.md)",
		kind, of, workload.InjectedAnnotation, removed)
}

// decide evaluates the policies and files their violations by enforcement action.
func (r *Reviewer) decide(ctx context.Context, req Request, raw []byte, parsed ast.Value, t workload.Template, targets, missing []string, d *Decision) error {
	in := policies.Input{Parsed: parsed,
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
		d.inputs.labels = labels
	}
	if len(missing) > 0 {
		available, err := r.Store.Names(ctx, req.Namespace)
		if err != nil {
			return err
		}
		in.Available = available
	}
	res, err := r.evaluate(ctx, &in)
	if err != nil {
		return err
	}
	c := r.Enforcement.Classify(res)
	d.PolicyRevision = res.Revision
	d.Violations = append(d.Violations, c.Deny...)
	d.Warned, d.Audited = c.Warn, c.Audit
	d.Warnings = append(d.Warnings, distinct(c.Warn)...)
	return nil
}

// resolve looks up and resolves every requested credential. Not-found names are returned in
// missing; Credentials the schema would refuse become violations; anything else is an error.
func (r *Reviewer) resolve(ctx context.Context, ns string, names []string) (resolved []credential.Resolved, missing []string, invalid []Violation, err error) {
	resolved = make([]credential.Resolved, 0, len(names))
	for _, name := range names {
		c, err := r.Store.Get(ctx, ns, name)
		if err != nil && apierrors.IsNotFound(err) {
			missing = append(missing, name)
			continue
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("get credential %s/%s: %w", ns, name, err)
		}
		rc, err := r.Values.Resolve(c) // credential.Resolve, once per Credential revision
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
