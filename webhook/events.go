package webhook

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/credgate/credgate/review"
)

// ReasonRejected is the reason of the Warning Event a refusal leaves.
const ReasonRejected = "CredentialsRejected"

// maxNote is the longest Event note the API server accepts.
const maxNote = 1024

// event leaves a Warning Event for a refusal where users look for it: on the object when it
// exists already (an update), else on its controller owner (the Job whose pod was refused),
// else on the namespace. The events.k8s.io recorder aggregates identical Events into a series,
// so a controller retrying a refused pod in a loop updates one Event instead of creating
// thousands. Dry-run requests leave none: they must not have side effects. refusal is the
// message the client is answered with, already redacted.
func (m *Handler) event(req admission.Request, obj runtime.Object, d *review.Decision, refusal string) {
	if m.Events == nil || !d.Denied() || d.DryRun {
		return
	}
	note := refusal
	if len(note) > maxNote {
		note = note[:maxNote-3] + "..."
	}
	action := "Admit" + m.Kind.GVK.Kind
	m.Events.Eventf(m.regarding(req, obj), nil, corev1.EventTypeWarning, ReasonRejected, action, "%s", note)
}

func (m *Handler) regarding(req admission.Request, obj runtime.Object) *corev1.ObjectReference {
	acc, err := meta.Accessor(obj)
	if err == nil && req.Operation != "CREATE" && acc.GetUID() != "" {
		return &corev1.ObjectReference{APIVersion: m.Kind.GVK.GroupVersion().String(), Kind: m.Kind.GVK.Kind,
			Namespace: req.Namespace, Name: acc.GetName(), UID: acc.GetUID()}
	}
	if err == nil {
		if ref := metav1.GetControllerOf(acc); ref != nil {
			return &corev1.ObjectReference{APIVersion: ref.APIVersion, Kind: ref.Kind, Namespace: req.Namespace,
				Name: ref.Name, UID: ref.UID}
		}
	}
	// The namespace itself; its Namespace field set so that the Event is stored in it (an Event
	// about a cluster-scoped object would go to "default"), where kubectl get events -n finds it.
	return &corev1.ObjectReference{APIVersion: "v1", Kind: "Namespace", Namespace: req.Namespace, Name: req.Namespace}
}
