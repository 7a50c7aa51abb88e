package webhook

import (
	"context"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/credgate/credgate/audit"
	"github.com/credgate/credgate/review"
	"github.com/credgate/credgate/workload"
)

// OwnerResolver finds the controller owner of a workload, for the audit record's owner chain.
type OwnerResolver interface {
	// Owner returns the controller owner of the object ref refers to in namespace — the one
	// whose UID is ref's, not another of the same name — or nil.
	Owner(ctx context.Context, namespace string, ref metav1.OwnerReference) *audit.Owner
}

// auditEvent is the event a decision makes: the strongest action among its violations, or
// allowed when it found none.
func auditEvent(d *review.Decision) audit.Event {
	switch {
	case d.Denied():
		return audit.EventDenied
	case len(d.Warned) > 0:
		return audit.EventWarned
	case len(d.Audited) > 0:
		return audit.EventAudited
	}
	return audit.EventAllowed
}

// audit writes the record of d, if the auditor wants its event. Its messages are d's, which
// Review redacted of the pod's literal values. obj is the object decoded, or nil.
func (m *Handler) audit(ctx context.Context, req admission.Request, obj runtime.Object, d *review.Decision) error {
	event := auditEvent(d)
	if !m.Audit.Wants(event) || m.ValidateOnly && event != audit.EventDenied ||
		event == audit.EventAllowed && len(d.Credentials) == 0 {
		return nil
	}
	r := &audit.Record{
		Event: event, RequestUID: string(req.UID), DryRun: d.DryRun, Operation: string(req.Operation),
		User: req.UserInfo.Username, Groups: req.UserInfo.Groups, Namespace: req.Namespace,
		Kind: m.Kind.GVK.Kind, Name: req.Name, Credentials: d.Credentials,
		PolicyRevision: d.PolicyRevision, Enforcement: "allow",
	}
	if obj == nil { // a reused decision: the object is decoded only now, for its owner
		obj, _ = m.decode(req.Object.Raw)
	}
	if acc, err := meta.Accessor(obj); err == nil && obj != nil {
		if r.Name == "" {
			r.Name = acc.GetName()
		}
		if r.Name == "" && acc.GetGenerateName() != "" {
			r.Name = acc.GetGenerateName() + "*"
		}
		if ref := metav1.GetControllerOf(acc); ref != nil {
			r.Owner = &audit.Owner{Kind: ref.Kind, Name: ref.Name}
			if m.Owners != nil {
				r.Owner.Owner = m.Owners.Owner(ctx, req.Namespace, *ref)
			}
		}
	}
	for _, set := range []struct {
		action string
		vs     []review.Violation
	}{{"audit", d.Audited}, {"warn", d.Warned}, {"deny", d.Violations}} {
		for _, v := range set.vs {
			r.Violations = append(r.Violations, audit.Violation{Rule: v.Rule, Credential: v.Credential, Message: v.Message, Action: set.action, Policy: v.Policy})
			r.Enforcement = set.action
		}
	}
	return m.Audit.Record(ctx, r)
}

// redactor hides, in a message that did not come from a decision (an error of the review),
// the literal environment values the object's pods set, in every pod template
// (review.Redactor); a decision's messages Review redacted itself.
func redactor(obj runtime.Object) func(string) string {
	ts, err := workload.PodTemplates(obj)
	if err != nil {
		return func(s string) string { return s }
	}
	return review.Redactor(ts...)
}
