package webhook

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/credgate/credgate/review"
	"github.com/credgate/credgate/workload"
)

// RuleFixedMetadata is the rule id of the refusal of an update that changes a credential label
// or a credgate.dev/ annotation of an existing object. It always denies.
const RuleFixedMetadata = "immutable-credential-label"

// AnnotationPrefix starts every annotation credgate reads or writes (credgate.dev/containers,
// credgate.dev/injected).
const AnnotationPrefix = "credgate.dev/"

// checkFixedMetadata answers an UPDATE of obj: refused when it adds, removes or changes a
// credential label or a credgate.dev/ annotation, admitted otherwise. A pod's credentials are
// injected once, when it is created; a label changed afterwards would make
// kubectl get pods -l credentials.credgate.dev/<name> lie about who uses a credential, and an
// annotation changed afterwards would misstate what was injected. The webhook configuration's
// matchConditions send credgate only updates that change these keys, so that no other update
// (a controller removing a finalizer, the kubelet writing status) depends on credgate; this
// check does not rely on them.
func (m *Handler) checkFixedMetadata(ctx context.Context, req admission.Request, obj runtime.Object, log logr.Logger) (admission.Response, *review.Decision) {
	if len(req.OldObject.Raw) == 0 {
		return admission.Errored(http.StatusBadRequest, errors.New("the admission request has no old object")), nil
	}
	old, err := m.decode(req.OldObject.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode old %s: %w", m.Kind.GVK.Kind, err)), nil
	}
	oldMeta, err := meta.Accessor(old)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("read old %s metadata: %w", m.Kind.GVK.Kind, err)), nil
	}
	newMeta, err := meta.Accessor(obj)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("read %s metadata: %w", m.Kind.GVK.Kind, err)), nil
	}
	changes := slices.Concat(
		changedKeys("label", workload.LabelPrefix, oldMeta.GetLabels(), newMeta.GetLabels()),
		changedKeys("annotation", AnnotationPrefix, oldMeta.GetAnnotations(), newMeta.GetAnnotations()))
	oldNames, _ := workload.Requested(oldMeta.GetLabels())
	newNames, _ := workload.Requested(newMeta.GetLabels())
	d := review.Decision{Credentials: slices.Compact(slices.Sorted(slices.Values(slices.Concat(oldNames, newNames)))),
		DryRun: req.DryRun != nil && *req.DryRun, Kind: m.Kind.GVK.Kind}
	if len(changes) == 0 {
		return admission.Allowed("no credential label or credgate annotation changed"), &d
	}
	d.Violations = []review.Violation{{Rule: RuleFixedMetadata, Message: fixedMetadataMessage(strings.ToLower(m.Kind.GVK.Kind), changes)}}
	// The message names keys only, never a value: nothing to redact.
	if err := m.audit(ctx, req, obj, &d); err != nil {
		log.Error(err, "write audit record") // a refusal stays a refusal
	}
	refusal := d.Message()
	m.event(req, obj, &d, refusal)
	log.Info("refused", keyOperation, req.Operation, keyCredentials, d.Credentials, keyRules, ruleIDs(d.Violations), keyDryRun, d.DryRun)
	return admission.Denied(refusal), &d
}

// fixedMetadataMessage says which keys an update changes, and what to do instead.
func fixedMetadataMessage(kind string, changes []string) string {
	return fmt.Sprintf("this update changes %s, but credential labels (%s*) and credgate annotations (%s*) are fixed when the %s is created; "+
		"delete the %s and create it again with the labels it needs (for a %s of a Job: create a new Job)",
		strings.Join(changes, ", "), workload.LabelPrefix, AnnotationPrefix, kind, kind, kind)
}

// changedKeys describes, sorted by key, each key with prefix that an update adds, removes or
// gives another value: "label credentials.credgate.dev/hf (added)". It never quotes a value.
func changedKeys(what, prefix string, old, updated map[string]string) []string {
	change := map[string]string{}
	for k, v := range old {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		if nv, ok := updated[k]; !ok {
			change[k] = "removed"
		} else if nv != v {
			change[k] = "changed"
		}
	}
	for k := range updated {
		if _, ok := old[k]; !ok && strings.HasPrefix(k, prefix) {
			change[k] = "added"
		}
	}
	keys := slices.Sorted(maps.Keys(change))
	out := make([]string, 0, min(len(keys), maxChangesNamed+1))
	for _, k := range keys[:min(len(keys), maxChangesNamed)] {
		out = append(out, what+" "+k+" ("+change[k]+")")
	}
	if n := len(keys) - maxChangesNamed; n > 0 {
		out = append(out, fmt.Sprintf("%d more %ss", n, what))
	}
	return out
}

// maxChangesNamed bounds the keys a refusal names, of labels and of annotations each: an
// update may change thousands, the message says how many more.
const maxChangesNamed = 16
