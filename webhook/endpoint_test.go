package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// TestEndpointRefusesWhatIsNotAReview: every body or header the API server would never send is
// answered with a status that says what is wrong, and no review runs.
func TestEndpointRefusesWhatIsNotAReview(t *testing.T) {
	pod := readFixture(t, "pod-training.json")
	for _, tt := range []struct {
		name, contentType string
		body              []byte
		code              int32
		msg               string
	}{
		{"empty body", "application/json", nil, http.StatusBadRequest, "request body is empty"},
		{"YAML", "application/yaml", pod, http.StatusBadRequest, "expected application/json"},
		{"too large", "application/json", bytes.Repeat([]byte(" "), MaxRequestBytes+1), http.StatusRequestEntityTooLarge, "too large"},
		{"not JSON", "application/json", []byte("request: {}"), http.StatusBadRequest, "decode the AdmissionReview"},
		{"another kind", "application/json", bytes.Replace(pod, []byte(`"kind": "AdmissionReview"`), []byte(`"kind": "Pod"`), 1),
			http.StatusBadRequest, "not an admission.k8s.io/v1 AdmissionReview"},
		{"no request", "application/json", []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), http.StatusBadRequest, "has no request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := newHandler(t, "Pod", newReviewer(t, testStore()))
			h := newWebhook(t, m, logr.Discard())
			req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "/mutate-v1-pod", bytes.NewReader(tt.body))
			if tt.body == nil {
				req.Body = http.NoBody
			}
			req.Header.Set("Content-Type", tt.contentType)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			resp, err := decodeResponse(rec.Body.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			if resp.Allowed || resp.Result.Code != tt.code || !strings.Contains(resp.Result.Message, tt.msg) {
				t.Errorf("got allowed=%t %d %q, want refused %d containing %q", resp.Allowed, resp.Result.Code, resp.Result.Message, tt.code, tt.msg)
			}
		})
	}
	if !bytes.Contains(readFixture(t, "pod-training.json"), []byte(`"kind": "AdmissionReview"`)) {
		t.Fatal(`the fixture's "kind": "AdmissionReview" is spelled otherwise: the "another kind" case tests nothing`)
	}
}

// TestEndpointAnswersInTheRequestVersion: a v1beta1 AdmissionReview (the same shape) is
// answered as v1beta1, with the request's UID and the same patch as v1.
func TestEndpointAnswersInTheRequestVersion(t *testing.T) {
	v1 := readFixture(t, "pod-training.json")
	v1beta1 := bytes.Replace(v1, []byte(`"admission.k8s.io/v1"`), []byte(`"admission.k8s.io/v1beta1"`), 1)
	if bytes.Equal(v1, v1beta1) {
		t.Fatal("the fixture's apiVersion is spelled otherwise")
	}
	h := newWebhook(t, newHandler(t, "Pod", newReviewer(t, testStore())), logr.Discard())
	want, _ := serve(t, h, v1)
	got, raw := serve(t, h, v1beta1)
	var tm struct{ APIVersion, Kind string }
	if err := json.Unmarshal(raw, &tm); err != nil {
		t.Fatal(err)
	}
	if tm.APIVersion != "admission.k8s.io/v1beta1" || tm.Kind != "AdmissionReview" {
		t.Errorf("answered as %s %s, want admission.k8s.io/v1beta1 AdmissionReview", tm.APIVersion, tm.Kind)
	}
	if got.UID != want.UID || !got.Allowed || !bytes.Equal(got.Patch, want.Patch) || len(got.Patch) == 0 {
		t.Errorf("v1beta1 answer differs from v1's: uid %q/%q allowed %t patch %d/%d bytes", got.UID, want.UID, got.Allowed, len(got.Patch), len(want.Patch))
	}
}

// TestEndpointRecoversPanics: with RecoverPanic, a panicking review is a 500 with the request's
// UID — the webhook's failurePolicy decides — and a log line, and the server goes on.
func TestEndpointRecoversPanics(t *testing.T) {
	var logs logBuffer
	m := newHandler(t, "Pod", newReviewer(t, testStore()))
	m.Log = newLogger(&logs)
	m.Reviewer = nil // Handle dereferences it: a nil-pointer panic
	h := &Endpoint{Handler: m, RecoverPanic: true}
	resp, _ := serve(t, h, readFixture(t, "pod-training.json"))
	if resp.Allowed || resp.Result.Code != http.StatusInternalServerError || resp.UID == "" {
		t.Errorf("got allowed=%t %d uid %q, want a 500 with the request's UID", resp.Allowed, resp.Result.Code, resp.UID)
	}
	if !strings.Contains(logs.String(), "admission handler panicked") || !strings.Contains(logs.String(), "nil pointer") {
		t.Errorf("the panic was not logged with what it was:\n%s", logs.String())
	}
}

// TestReviewContextOutlivesTheServer: a review's context is not cancelled with the server's
// (controller-runtime cancels every request's when a stopping replica drains them), and is
// bounded by the API server's ?timeout instead, or MaxReviewTime.
func TestReviewContextOutlivesTheServer(t *testing.T) {
	for _, tt := range []struct {
		query string
		want  time.Duration
	}{
		{"timeout=5s", 5 * time.Second},
		{"a=b&timeout=2s&c=d", 2 * time.Second},
		{"", MaxReviewTime},
		{"timeout=1h", MaxReviewTime},
		{"timeout=-1s", MaxReviewTime},
		{"timeout=soon", MaxReviewTime},
	} {
		server, stop := context.WithCancel(context.Background())
		r := httptest.NewRequestWithContext(server, http.MethodPost, "/mutate-v1-pod?"+tt.query, nil)
		ctx, cancel := reviewContext(r)
		stop()
		if ctx.Err() != nil {
			t.Errorf("%q: the review's context ended with the server's", tt.query)
		}
		deadline, ok := ctx.Deadline()
		if left := time.Until(deadline); !ok || left > tt.want || left < tt.want-time.Second {
			t.Errorf("%q: deadline in %s, want %s", tt.query, left, tt.want)
		}
		cancel()
	}
}
