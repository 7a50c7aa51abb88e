package review

import (
	"slices"

	corev1 "k8s.io/api/core/v1"

	"github.com/credgate/credgate/audit"
	"github.com/credgate/credgate/workload"
)

// Redactor returns a function that hides, in messages, the literal environment values the pod
// templates ts set — in every container, init and ephemeral included — that a careless policy
// message could quote, and that no response, warning, Event or audit record may hold. Pass
// every template of an object: a policy deciding one sees them all (input.object).
func Redactor(ts ...workload.Template) func(string) string {
	var vals []string
	add := func(env []corev1.EnvVar) {
		for _, e := range env {
			if e.Value != "" {
				vals = append(vals, e.Value)
			}
		}
	}
	for _, t := range ts {
		for _, cs := range [][]corev1.Container{t.Spec.InitContainers, t.Spec.Containers} {
			for _, c := range cs {
				add(c.Env)
			}
		}
		for _, c := range t.Spec.EphemeralContainers {
			add(c.Env)
		}
	}
	// Longest first: of two values where one starts the other, the longer is hidden whole.
	slices.SortFunc(vals, func(a, b string) int { return len(b) - len(a) })
	return audit.Redactor(vals)
}

// redact hides the literal values of ts, the object's pod templates, in every message of d. It
// runs before bound cuts messages: a value cut in two would no longer be recognised.
func redact(d *Decision, ts []workload.Template) {
	if len(d.Violations)+len(d.Warned)+len(d.Audited)+len(d.Warnings) == 0 {
		return
	}
	hide := Redactor(ts...)
	for _, vs := range [][]Violation{d.Violations, d.Warned, d.Audited} {
		for i := range vs {
			vs[i].Message = hide(vs[i].Message)
		}
	}
	for i := range d.Warnings {
		d.Warnings[i] = hide(d.Warnings[i])
	}
}
