package webhook

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr/funcr"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"
)

// FuzzHandler sends arbitrary bytes, as an AdmissionReview body, to one of the webhook's
// endpoints (mutating or validating) through Endpoint.ServeHTTP with panic recovery off. Whatever the input:
// no panic; a strictly valid AdmissionReview response with a result; allowed exactly when the
// code is 200; never 500, since the store cannot fail here and bad input is the client's
// error; the request's UID echoed; and a patch that applies to the submitted object, only
// adds to it, and leaves nothing for a second review to change.
//
// go test runs the seeds (every fixture under testdata/ at every endpoint, and the edge cases
// below); make fuzz explores from them.
func FuzzHandler(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	if len(files) == 0 {
		f.Fatal("no fixtures under testdata/")
	}
	for _, file := range files {
		body, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		for i := range 2 * len(Kinds) {
			f.Add(uint8(i), body)
		}
	}
	pod := readFixture(f, "pod-labelled.json")
	object := func(v any) []byte {
		return editRequest(f, pod, func(req map[string]any) { req["object"] = v })
	}
	spec := func(field string, v any) []byte {
		return editRequest(f, pod, func(req map[string]any) {
			req["object"].(map[string]any)["spec"].(map[string]any)[field] = v
		})
	}
	for _, body := range [][]byte{
		nil,
		[]byte(`{}`),
		[]byte(`null`),
		[]byte(`[]`),
		[]byte(`{"request":null}`),
		[]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","kind":{"version":"v1","kind":"Pod"},"operation":"CREATE"}}`),
		[]byte("apiVersion: admission.k8s.io/v1\nkind: AdmissionReview\nrequest:\n  uid: u\n  kind: {version: v1, kind: Pod}\n  operation: CREATE\n  namespace: ml-team\n  object: {apiVersion: v1, kind: Pod, metadata: {name: p, labels: {credentials.credgate.dev/hf: \"true\"}}, spec: {containers: [{name: c}]}}\n"),
		editRequest(f, pod, func(req map[string]any) { req["operation"] = "CONNECT" }),
		editRequest(f, pod, func(req map[string]any) { req["namespace"] = "" }),
		editRequest(f, pod, func(req map[string]any) { delete(req, "kind") }),
		object("a string"),
		object(42.0),
		object([]any{map[string]any{}}),
		object(map[string]any{}),
		object(map[string]any{"apiVersion": "v1", "kind": "Pod"}),
		spec("containers", []any{map[string]any{}}),
		spec("containers", []any{"trainer"}),
		spec("initContainers", []any{map[string]any{"name": "trainer"}}),
		spec("volumes", []any{map[string]any{"name": "credgate-wandb", "emptyDir": map[string]any{}}}),
	} {
		f.Add(uint8(0), body)
	}
	sentinels := readFixture(f, "pod-sentinels.json")
	f.Add(uint8(0), editRequest(f, sentinels, func(req map[string]any) { req["kind"].(map[string]any)["kind"] = "Job" }))

	// handlers[i] serves Kinds[i%len(Kinds)], mutating for the first len(Kinds), then validating.
	var handlers []http.Handler
	for _, validate := range []bool{false, true} {
		for _, k := range Kinds {
			m := newHandler(f, k.GVK.Kind, newReviewer(f, testStore()))
			m.ValidateOnly = validate
			handlers = append(handlers, newWebhook(f, m, funcr.New(func(_, _ string) {}, funcr.Options{Verbosity: 10})))
		}
	}
	f.Fuzz(func(t *testing.T, endpoint uint8, body []byte) {
		i := int(endpoint) % len(handlers)
		kind := Kinds[i%len(Kinds)].GVK.Kind
		resp, _ := serve(t, handlers[i], body)

		code := resp.Result.Code
		switch {
		case resp.Allowed && code != http.StatusOK:
			t.Fatalf("allowed with code %d: %s", code, resp.Result.Message)
		case !resp.Allowed && code == http.StatusOK:
			t.Fatalf("refused with code 200: %s", resp.Result.Message)
		case code != http.StatusOK && code != http.StatusBadRequest && code != http.StatusForbidden:
			t.Fatalf("code %d (%s): bad input must be 400, a policy refusal 403", code, resp.Result.Message)
		}
		if len(resp.Patch) > 0 && !resp.Allowed {
			t.Fatalf("refused with a patch: %s", resp.Patch)
		}

		req, ok := decodeRequest(body)
		if !ok {
			return
		}
		if resp.UID != req.UID {
			t.Fatalf("response UID %q, want the request's %q", resp.UID, req.UID)
		}
		if len(resp.Patch) == 0 {
			if resp.PatchType != nil {
				t.Fatalf("patch type %s without a patch", *resp.PatchType)
			}
			return
		}
		if i >= len(Kinds) {
			t.Fatalf("the validating webhook patched: %s", resp.Patch)
		}
		patched := checkPatch(t, req.Object.Raw, resp)
		checkSettled(t, kind, req.Namespace, patched)
	})
}

// decodeRequest returns the AdmissionRequest of body, if body is what the API server sends: a
// JSON AdmissionReview (field names case-sensitive; admission.k8s.io/v1 or v1beta1, or no
// apiVersion and kind) with a request.
func decodeRequest(body []byte) (*admissionv1.AdmissionRequest, bool) {
	var ar admissionv1.AdmissionReview
	if err := kjson.UnmarshalCaseSensitivePreserveInts(body, &ar); err != nil || ar.Request == nil {
		return nil, false
	}
	if ar.TypeMeta != (metav1.TypeMeta{}) && (ar.Kind != "AdmissionReview" ||
		ar.APIVersion != "admission.k8s.io/v1" && ar.APIVersion != "admission.k8s.io/v1beta1") {
		return nil, false
	}
	return ar.Request, true
}
