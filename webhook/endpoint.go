package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	admissionv1beta1 "k8s.io/api/admission/v1beta1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/credgate/credgate/mutate"
)

// MaxRequestBytes bounds an AdmissionReview's body, as controller-runtime's admission webhook
// does (the API server sends at most its own request limit, 3 MiB by default, plus the review).
const MaxRequestBytes = 7 << 20

// Endpoint serves one Handler over HTTP, as the API server calls a webhook: an AdmissionReview
// (admission.k8s.io/v1, or v1beta1, which has the same shape) in, one out with the same
// apiVersion. It does what controller-runtime's admission.Webhook does — the same checks, the
// same statuses, panics answered with a 500 — but decodes the review in one pass, as the API
// server's JSON serializer does (case-sensitive, unknown fields ignored), where the universal
// deserializer behind admission.Webhook parses the body twice (once only for its kind); and it
// reuses its buffers between requests.
type Endpoint struct {
	Handler *Handler
	// RecoverPanic answers a panic with a 500 and logs it; off, the panic propagates (tests and
	// the fuzzer want to see it).
	RecoverPanic bool
}

var _ http.Handler = (*Endpoint)(nil)

// reviewKinds are the AdmissionReview versions an Endpoint answers.
var reviewKinds = map[metav1.TypeMeta]bool{
	{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"}:      true,
	{APIVersion: admissionv1beta1.SchemeGroupVersion.String(), Kind: "AdmissionReview"}: true,
}

// buffers are the request bodies and encoded responses of earlier requests, reused.
var buffers = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// ServeHTTP implements http.Handler.
func (e *Endpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	log := e.Handler.Log
	body := buffers.Get().(*bytes.Buffer)
	defer putBuffer(body)
	tm := metav1.TypeMeta{APIVersion: admissionv1.SchemeGroupVersion.String(), Kind: "AdmissionReview"}
	var req admission.Request
	resp, err := e.read(r, body, &tm, &req)
	if err != nil {
		log.Error(err, "bad request")
	} else {
		ctx, cancel := reviewContext(r)
		resp = e.handle(ctx, req, log)
		cancel()
	}
	e.write(w, tm, resp, log)
}

// MaxReviewTime bounds the work of one review whatever the API server's timeout says.
const MaxReviewTime = 30 * time.Second

// reviewContext is r's context without the server's cancellation, bounded instead by the API
// server's own deadline: the timeout it adds to the URL (?timeout=5s, the webhook's
// timeoutSeconds), at most MaxReviewTime. controller-runtime's webhook server derives every
// request's context from the manager's, which a replica that stops cancels while it drains
// the requests in flight: those must be answered, not failed (failurePolicy: Fail).
func reviewContext(r *http.Request) (context.Context, context.CancelFunc) {
	d := MaxReviewTime
	q := r.URL.RawQuery
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		if v, ok := strings.CutPrefix(kv, "timeout="); ok {
			if t, err := time.ParseDuration(v); err == nil && t > 0 && t < d {
				d = t
			}
			break
		}
	}
	return context.WithTimeout(context.WithoutCancel(r.Context()), d)
}

// read reads and decodes r's AdmissionReview into tm and req; a non-nil error comes with the
// response that says what is wrong.
func (e *Endpoint) read(r *http.Request, body *bytes.Buffer, tm *metav1.TypeMeta, req *admission.Request) (admission.Response, error) {
	if r.Body == nil || r.Body == http.NoBody {
		err := errors.New("request body is empty")
		return admission.Errored(http.StatusBadRequest, err), err
	}
	defer r.Body.Close()
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		err := fmt.Errorf("contentType=%s, expected application/json", ct)
		return admission.Errored(http.StatusBadRequest, err), err
	}
	if _, err := body.ReadFrom(io.LimitReader(r.Body, MaxRequestBytes+1)); err != nil {
		return admission.Errored(http.StatusBadRequest, err), err
	}
	if body.Len() > MaxRequestBytes {
		err := fmt.Errorf("request entity is too large; limit is %d bytes", MaxRequestBytes)
		return admission.Errored(http.StatusRequestEntityTooLarge, err), err
	}
	var ar admissionv1.AdmissionReview
	if err := decodeJSON(body.Bytes(), &ar); err != nil {
		err = fmt.Errorf("decode the AdmissionReview: %w", err)
		return admission.Errored(http.StatusBadRequest, err), err
	}
	switch {
	case ar.TypeMeta == (metav1.TypeMeta{}):
		// No apiVersion and kind: answered as v1, as admission.Webhook does.
	case !reviewKinds[ar.TypeMeta]:
		err := fmt.Errorf("the request is a %s %s, not an admission.k8s.io/v1 AdmissionReview", ar.APIVersion, ar.Kind)
		return admission.Errored(http.StatusBadRequest, err), err
	default:
		*tm = ar.TypeMeta
	}
	if ar.Request == nil {
		err := errors.New("the AdmissionReview has no request")
		return admission.Errored(http.StatusBadRequest, err), err
	}
	req.AdmissionRequest = *ar.Request
	return admission.Response{}, nil
}

// handle runs the Handler, answering a panic with a 500 when e.RecoverPanic.
func (e *Endpoint) handle(ctx context.Context, req admission.Request, log logr.Logger) (resp admission.Response) {
	if e.RecoverPanic {
		defer func() {
			if p := recover(); p != nil {
				// A runtime error says where; another value could quote the object, so only its
				// type is logged.
				what := fmt.Sprintf("%T", p)
				if re, ok := p.(runtime.Error); ok {
					what = re.Error()
				}
				log.Error(fmt.Errorf("panic: %s", what), "admission handler panicked", keyUID, req.UID, "stack", string(debug.Stack()))
				resp = admission.Errored(http.StatusInternalServerError, errors.New("credgate failed on this request; see the credgate logs"))
				resp.UID = req.UID
			}
		}()
	}
	resp = e.Handler.Handle(ctx, req)
	if err := complete(&resp, req); err != nil {
		log.Error(err, "encode the patch", keyUID, req.UID)
		resp = admission.Errored(http.StatusInternalServerError, errors.New("credgate could not encode its response; see the credgate logs"))
		resp.UID = req.UID
	}
	return resp
}

// complete fills in resp as admission.Response.Complete does: the request's UID, a status code,
// the patch encoded.
func complete(resp *admission.Response, req admission.Request) error {
	resp.UID = req.UID
	if resp.Result == nil {
		resp.Result = &metav1.Status{}
	}
	if resp.Result.Code == 0 {
		resp.Result.Code = http.StatusOK
	}
	if len(resp.Patches) == 0 || resp.Patch != nil {
		return nil
	}
	patch, err := mutate.EncodePatch(resp.Patches)
	if err != nil {
		return err
	}
	resp.Patch = patch
	resp.PatchType = new(admissionv1.PatchTypeJSONPatch)
	return nil
}

// write encodes resp in an AdmissionReview of tm's version and writes it.
func (e *Endpoint) write(w http.ResponseWriter, tm metav1.TypeMeta, resp admission.Response, log logr.Logger) {
	out := buffers.Get().(*bytes.Buffer)
	defer putBuffer(out)
	if err := json.NewEncoder(out).Encode(admissionv1.AdmissionReview{TypeMeta: tm, Response: &resp.AdmissionResponse}); err != nil {
		log.Error(err, "encode the response")
		http.Error(w, "credgate could not encode its response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if _, err := w.Write(out.Bytes()); err != nil {
		log.V(1).Info("could not write the response", "error", err.Error())
		return
	}
	if l := log.V(5); l.Enabled() {
		l.Info("wrote response", keyUID, resp.UID, "allowed", resp.Allowed, "code", resp.Result.Code, "reason", resp.Result.Reason)
	}
}

// putBuffer returns b to the pool, unless a large request grew it: those are let go.
func putBuffer(b *bytes.Buffer) {
	if b.Cap() > 1<<20 {
		return
	}
	b.Reset()
	buffers.Put(b)
}
