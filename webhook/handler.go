package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/credgate/credgate/mutate"
	"github.com/credgate/credgate/review"
	"github.com/credgate/credgate/workload"
)

// Kind is one admitted kind at its webhook paths: what it is (its workload.Kind), how to make
// an empty one to decode into, and which operations are reviewed (others are admitted
// untouched).
type Kind struct {
	GVK        schema.GroupVersionKind
	New        func() runtime.Object
	Operations []admissionv1.Operation
	// Path is where its mutating webhook is served; ValidatePath its validating webhook.
	Path, ValidatePath string
	// FixedOnUpdate has its validating webhook refuse every UPDATE, of the object or of a
	// subresource, that changes a credential label or a credgate.dev/ annotation: what an object
	// requests is decided once, at creation (see checkFixedMetadata).
	FixedOnUpdate bool
	// Workload is what credgate knows of the kind: its pod templates, how labels reach them.
	Workload *workload.Kind
}

// Kinds are the kinds the webhook admits: those of workload.Kinds that credgate serve admits
// (a Pod gets its credentials when it is created; a workload is decided when it is submitted,
// on each of its pod templates, and its templates only get the credential labels, so its pods
// get the Credentials as they are when each is created). A Pod's labels may change on update,
// so its validating webhook also keeps its credential labels and credgate's annotations as
// they were created.
var Kinds = admittedKinds()

func admittedKinds() []Kind {
	var out []Kind
	for i := range workload.Kinds {
		wk := &workload.Kinds[i]
		if !wk.Admitted() {
			continue
		}
		ops := make([]admissionv1.Operation, len(wk.Operations))
		for i, op := range wk.Operations {
			ops[i] = admissionv1.Operation(op)
		}
		p := PathOf(wk.GVK)
		out = append(out, Kind{GVK: wk.GVK, New: wk.New, Operations: ops, Path: "/mutate-" + p, ValidatePath: "/validate-" + p,
			FixedOnUpdate: wk.FixedOnUpdate, Workload: wk})
	}
	return out
}

// PathOf is the part of a kind's webhook paths that names it, as controller-runtime names
// them: "v1-pod", "batch-v1-job", "kubeflow-org-v1-pytorchjob".
func PathOf(gvk schema.GroupVersionKind) string {
	p := gvk.Version + "-" + strings.ToLower(gvk.Kind)
	if gvk.Group != "" {
		p = strings.ReplaceAll(gvk.Group, ".", "-") + "-" + p
	}
	return p
}

// Handler is the admission handler for one Kind: mutating, or with ValidateOnly validating.
// The validating handler reviews the object as it will be stored — after every mutating
// webhook, credgate's included — so a conflict another webhook introduced is refused too. It
// returns no warnings: the mutating handler already showed them once.
type Handler struct {
	Handlers
	Kind         Kind
	ValidateOnly bool
}

var _ admission.Handler = (*Handler)(nil)

// Handle implements admission.Handler: guard, decode, review, respond; and count.
func (m *Handler) Handle(ctx context.Context, req admission.Request) admission.Response {
	start := time.Now()
	var reused bool
	resp, d := m.handle(ctx, req, &reused)
	path := m.Kind.Path
	if m.ValidateOnly {
		path = m.Kind.ValidatePath
	}
	m.Metrics.observe(path, req, resp, d, reused, start)
	return resp
}

// handle answers req, with the decision when the review ran or was reused (then *reused is
// set).
func (m *Handler) handle(ctx context.Context, req admission.Request, reused *bool) (admission.Response, *review.Decision) {
	fixed := m.ValidateOnly && m.Kind.FixedOnUpdate && req.Operation == admissionv1.Update
	if !fixed && !slices.Contains(m.Kind.Operations, req.Operation) {
		return admission.Allowed("credgate does not mutate this operation"), nil
	}
	if req.Kind.Group != m.Kind.GVK.Group || req.Kind.Version != m.Kind.GVK.Version || req.Kind.Kind != m.Kind.GVK.Kind {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf(
			"this webhook admits %s, not %s: check the webhook configuration's rules", gvkString(metav1.GroupVersionKind(m.Kind.GVK)), gvkString(req.Kind))), nil
	}
	if len(req.Object.Raw) == 0 {
		return admission.Errored(http.StatusBadRequest, errors.New("the admission request has no object")), nil
	}
	log := &requestLog{base: m.Log, req: &req, kind: m.Kind.GVK.Kind}
	// An admission identical to one decided a moment ago (the next pod of a Job) reuses its
	// decision and encoded patch, if nothing it read has changed (review.Decisions).
	var key review.Key
	reuse := m.Decisions != nil && req.Operation == admissionv1.Create && !fixed
	if reuse {
		key = m.key(req)
		if e, ok := m.Decisions.Get(ctx, m.Reviewer, key, req.Namespace); ok {
			*reused = true
			return m.respond(ctx, req, nil, &e.Decision, e.Patch, log), &e.Decision
		}
	}
	obj, err := m.decode(req.Object.Raw)
	if err != nil {
		return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode %s: %w", m.Kind.GVK.Kind, err)), nil
	}
	if fixed {
		return m.checkFixedMetadata(ctx, req, obj, log.get())
	}
	// An update's old object: a credential label credgate copied into a CronJob's pod template
	// follows the CronJob's (workload.FollowLabels).
	var old runtime.Object
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		if old, err = m.decode(req.OldObject.Raw); err != nil {
			return admission.Errored(http.StatusBadRequest, fmt.Errorf("decode old %s: %w", m.Kind.GVK.Kind, err)), nil
		}
	}
	d, err := m.Reviewer.Review(ctx, review.Request{
		Namespace: req.Namespace, Object: obj, Old: old, Raw: req.Object.Raw,
		Operation: string(req.Operation), Name: req.Name,
		User: req.UserInfo.Username, Groups: req.UserInfo.Groups,
		GVK: m.Kind.GVK, DryRun: req.DryRun != nil && *req.DryRun, DecideOnly: m.ValidateOnly,
	})
	switch {
	case errors.Is(err, workload.ErrMalformed), errors.Is(err, workload.ErrUnsupportedKind):
		return admission.Errored(http.StatusBadRequest, err), &d
	case err != nil:
		// A policy's runtime error may quote the input: hide the pod's literal values.
		log.get().Error(errors.New(redactor(obj)(err.Error())), "review failed")
		return admission.Errored(http.StatusInternalServerError, errors.New("credgate could not review the request; see the credgate logs")), &d
	}
	var patch []byte
	if len(d.Patch) > 0 && !m.ValidateOnly && !d.Denied() {
		if patch, err = mutate.EncodePatch(d.Patch); err != nil {
			log.get().Error(err, "encode the patch")
			return admission.Errored(http.StatusInternalServerError, errors.New("credgate could not encode its response; see the credgate logs")), &d
		}
	}
	resp := m.respond(ctx, req, obj, &d, patch, log)
	if reuse && resp.Allowed {
		m.Decisions.Put(key, &d, patch)
	}
	return resp, &d
}

// requestLog is the logger of one request, with its identity, built on first use: most
// admissions log nothing.
type requestLog struct {
	base logr.Logger
	req  *admission.Request
	kind string
	log  *logr.Logger
}

func (l *requestLog) get() logr.Logger {
	if l.log == nil {
		lg := l.base.WithValues(keyUID, l.req.UID, keyKind, l.kind, keyNamespace, l.req.Namespace, keyName, l.req.Name)
		l.log = &lg
	}
	return *l.log
}

// key is req's review.Key at this webhook.
func (m *Handler) key(req admission.Request) review.Key {
	path := m.Kind.Path
	if m.ValidateOnly {
		path = m.Kind.ValidatePath
	}
	return review.KeyOf(review.KeyRequest{
		Webhook: path, Operation: string(req.Operation), Namespace: req.Namespace, Name: req.Name,
		User: req.UserInfo.Username, Groups: req.UserInfo.Groups, DryRun: req.DryRun != nil && *req.DryRun,
		Object: req.Object.Raw, IgnoreManagedFields: m.Reviewer.IgnoresManagedFields(),
	})
}

// respond records, logs and answers d, the decision on req, whose patch encodes to patch. obj
// is the object decoded, or nil when d is a reused decision (it is decoded then only if an
// audit record needs its owner).
func (m *Handler) respond(ctx context.Context, req admission.Request, obj runtime.Object, d *review.Decision, patch []byte, log *requestLog) admission.Response {
	// Policy messages may quote what the pod sets: Review redacted every one — the refusal,
	// the warnings, the audit record's and the Event's all come from them — before cutting
	// them to size.
	if err := m.audit(ctx, req, obj, d); err != nil {
		log.get().Error(err, "write audit record")
		if !d.Denied() && m.Audit.FailClosed() {
			return admission.Errored(http.StatusInternalServerError, errors.New("credgate could not write the audit record; see the credgate logs"))
		}
	}
	var refusal string
	if d.Denied() {
		refusal = d.Message()
	}
	m.event(req, obj, d, refusal)
	switch {
	case d.Denied():
		log.get().Info("refused", keyCredentials, d.Credentials, keyRules, ruleIDs(d.Violations), keyRevision, d.PolicyRevision, keyDryRun, d.DryRun)
		return admission.Denied(refusal)
	case !d.Mutated && len(d.Patch) == 0 && len(patch) == 0:
		return admission.Allowed("no credentials requested")
	case len(d.Audited) > 0:
		log.get().Info("admitted with audited violations", keyCredentials, d.Credentials, keyRules, ruleIDs(d.Audited), keyRevision, d.PolicyRevision)
	}
	if m.ValidateOnly {
		return admission.Allowed("")
	}

	if d.Stripped != nil {
		log.get().Info("removed an injection by an earlier credgate", keyCredentials, d.Credentials)
	}
	switch {
	case !d.Mutated || !m.Log.V(1).Enabled():
	case m.Kind.GVK.Kind == "Pod":
		log.get().V(1).Info("injected", keyCredentials, d.Credentials)
	default:
		log.get().V(1).Info("checked; its pods get the credentials when they are created", keyCredentials, d.Credentials)
	}
	resp := patchResponse(d.Patch).WithWarnings(d.Warnings...)
	if len(patch) > 0 {
		resp.Patch, resp.PatchType = patch, new(admissionv1.PatchTypeJSONPatch)
	}
	return resp
}

// decode decodes raw into a new object of the webhook's kind, as the API server's JSON
// serializer does (case-sensitive field names, unknown fields ignored), leaving out what
// credgate never reads (decodeObject), in one pass: the universal deserializer behind
// admission.Decoder parses the document twice, once only to read its apiVersion and kind.
func (m *Handler) decode(raw []byte) (runtime.Object, error) {
	obj := m.Kind.New()
	if err := decodeObject(raw, obj); err != nil {
		return nil, err
	}
	if gvk := obj.GetObjectKind().GroupVersionKind(); gvk != m.Kind.GVK {
		return nil, fmt.Errorf("the object is %s, not %s", gvkString(metav1.GroupVersionKind(gvk)), gvkString(metav1.GroupVersionKind(m.Kind.GVK)))
	}
	return obj, nil
}

// patchResponse admits the request with ops, as admission.PatchResponseFromRaw would.
func patchResponse(ops []jsonpatch.Operation) admission.Response {
	r := admission.Response{Patches: ops, AdmissionResponse: admissionv1.AdmissionResponse{Allowed: true}}
	if len(ops) > 0 {
		r.PatchType = new(admissionv1.PatchTypeJSONPatch)
	}
	return r
}

func ruleIDs(vs []review.Violation) []string {
	ids := make([]string, 0, len(vs))
	for _, v := range vs {
		if !slices.Contains(ids, v.Rule) {
			ids = append(ids, v.Rule)
		}
	}
	return ids
}

func gvkString(k metav1.GroupVersionKind) string {
	if k.Group == "" {
		return k.Version + "/" + k.Kind
	}
	return k.Group + "/" + k.Version + "/" + k.Kind
}
