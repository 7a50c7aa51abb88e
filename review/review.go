package review

import (
	"context"
	"errors"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/credgate/credgate/credential"
	"github.com/credgate/credgate/mutate"
	"github.com/credgate/credgate/workload"
)

// Rule ids of the refusals this package makes itself.
const (
	RuleUnknownCredential = "unknown-credential"
	RuleInvalidCredential = "invalid-credential"
	RuleCredentialLabel   = "invalid-credential-label"
	RuleContainers        = "invalid-containers-annotation"
)

// Violation is one reason to refuse a pod: a stable rule id, the credential it concerns
// (empty when none), and a message that says how to fix it.
type Violation struct {
	Rule       string `json:"rule"`
	Credential string `json:"credential,omitempty"`
	Message    string `json:"message"`
}

// Request is one object to admit.
type Request struct {
	// Namespace is the namespace the object is created in (the admission request's, which a
	// pod created by a controller may not carry itself).
	Namespace string
	// Object is the decoded Pod, Job, CronJob or apps/v1 workload. Review mutates it in place.
	Object runtime.Object
}

// Decision is the outcome of a review that did not fail.
type Decision struct {
	// Credentials are the names the pod requests, sorted.
	Credentials []string
	// Violations refuse the pod when not empty; Object is then left unchanged.
	Violations []Violation
	// Warnings are returned to the client of an admitted request.
	Warnings []string
	// Mutated reports whether Object was passed through mutate.
	Mutated bool
	// Resolved are the requested credentials as injected, sorted by name.
	Resolved []credential.Resolved
}

// Denied reports whether the decision refuses the object.
func (d *Decision) Denied() bool { return len(d.Violations) > 0 }

// Message is the refusal users see: every violation at once, each with its rule id.
func (d *Decision) Message() string {
	var b strings.Builder
	b.WriteString("credgate refused the pod: ")
	for i, v := range d.Violations {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString("[" + v.Rule + "] " + v.Message)
	}
	return b.String()
}

// Reviewer reviews admission requests.
type Reviewer struct {
	Store credential.Store
}

// Review admits req.Object, mutating it in place. A returned error is either bad input
// (wrapping workload.ErrMalformed or workload.ErrUnsupportedKind) or an internal failure;
// policy refusals are Violations.
func (r *Reviewer) Review(ctx context.Context, req Request) (Decision, error) {
	t, err := workload.PodTemplate(req.Object)
	if err != nil {
		return Decision{}, err
	}
	names, problems := workload.Requested(t.Meta.Labels)
	d := Decision{Credentials: names}
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
	if len(missing) > 0 {
		v, err := r.unknown(ctx, req.Namespace, missing)
		if err != nil {
			return Decision{}, err
		}
		d.Violations = append(d.Violations, v...)
	}
	if d.Denied() {
		return d, nil
	}
	for _, c := range mutate.Apply(t, resolved, targets) {
		d.Warnings = append(d.Warnings, "credential "+c.Credential+": "+c.Message)
	}
	d.Mutated = true
	return d, nil
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

func (r *Reviewer) unknown(ctx context.Context, ns string, missing []string) ([]Violation, error) {
	existing, err := r.Store.Names(ctx, ns)
	if err != nil {
		return nil, err
	}
	have := "there are none"
	if len(existing) > 0 {
		have = "it has: " + strings.Join(existing, ", ")
	}
	out := make([]Violation, len(missing))
	for i, name := range missing {
		out[i] = Violation{Rule: RuleUnknownCredential, Credential: name, Message: fmt.Sprintf(
			"credential %q does not exist in namespace %q (%s); create it or fix the label %s%s",
			name, ns, have, workload.LabelPrefix, name)}
	}
	return out, nil
}
