package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"github.com/open-policy-agent/opa/v1/ast"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kjson "sigs.k8s.io/json"

	"github.com/credgate/credgate/audit"
	"github.com/credgate/credgate/policies"
	"github.com/credgate/credgate/review"
)

// BenchmarkHandler measures the whole admission path for a realistic training pod — a pod
// the job controller creates for a Job, with a data-download init container, a trainer and a
// metrics sidecar, requesting three credentials (wandb, hf, aws with a region): AdmissionReview
// bytes in, through Endpoint.ServeHTTP (decode, guards, review, mutate, patch), to
// response bytes out. The logger is zap's production JSON logger at info level, as serve wires
// it, writing to io.Discard. Compare with BenchmarkFloor.
//
// Sub-benchmarks: policy=builtin runs the built-in Rego policies, as credgate serves;
// policy=none replaces them with an evaluator that finds nothing, which is the handler as it
// was before the policy layer: their difference is what policy costs per request.
//
// policy=builtin,reused is the same request again with review.Decisions, as serve runs: the
// next pod of a Job, whose decision and patch are reused once their inputs are checked.
func BenchmarkHandler(b *testing.B) {
	b.Run("policy=builtin", func(b *testing.B) { benchmarkHandler(b, newReviewer(b, testStore()), nil) })
	b.Run("policy=none", func(b *testing.B) {
		r := newReviewer(b, testStore())
		r.Policy = noPolicy{}
		benchmarkHandler(b, r, nil)
	})
	b.Run("policy=builtin,reused", func(b *testing.B) {
		d := review.NewDecisions(0)
		benchmarkHandler(b, newReviewer(b, testStore()), d)
		if s := d.Stats(); s.Hits < int64(b.N) {
			b.Fatalf("%d of %d requests reused the decision", s.Hits, b.N)
		}
	})
}

// noPolicy is a policy evaluator that finds no violation, and builds no policy input to find
// it in (review.InputEvaluator): as no policy reads anything.
type noPolicy struct{}

func (noPolicy) Evaluate(context.Context, ast.Value) (policies.Result, error) {
	return policies.Result{Revision: "none"}, nil
}

func (noPolicy) EvaluateInput(context.Context, *policies.Input) (policies.Result, error) {
	return policies.Result{Revision: "none"}, nil
}

func benchmarkHandler(b *testing.B, r *review.Reviewer, reuse *review.Decisions) {
	body := readFixture(b, "pod-training.json")
	zl := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.InfoLevel))
	m := newHandler(b, "Pod", r)
	m.Decisions = reuse
	h := newWebhook(b, m, zapr.NewLogger(zl))

	// The path measured is the one that patches.
	resp, _ := serve(b, h, body)
	if !resp.Allowed || len(resp.Patch) == 0 {
		b.Fatalf("the benchmark request is not admitted with a patch: %s", resp.Result.Message)
	}

	rd := &requestBody{}
	req := httptest.NewRequestWithContext(b.Context(), http.MethodPost, "/mutate-v1-pod", rd)
	req.Header.Set("Content-Type", "application/json")
	w := &responseBuffer{header: http.Header{}}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		rd.Reset(body)
		req.Body = rd
		w.Reset()
		h.ServeHTTP(w, req)
	}
}

// BenchmarkFloor is the least any handler of this request must do, with encoding/json: decode
// the AdmissionReview, decode the pod in it, and encode a response. No review, no patch.
func BenchmarkFloor(b *testing.B) {
	body := readFixture(b, "pod-training.json")
	var out bytes.Buffer
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var ar admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &ar); err != nil {
			b.Fatal(err)
		}
		var pod corev1.Pod
		if err := json.Unmarshal(ar.Request.Object.Raw, &pod); err != nil {
			b.Fatal(err)
		}
		resp := admissionv1.AdmissionReview{
			TypeMeta: ar.TypeMeta,
			Response: &admissionv1.AdmissionResponse{UID: ar.Request.UID, Allowed: true, Result: &metav1.Status{Code: http.StatusOK}},
		}
		out.Reset()
		if err := json.NewEncoder(&out).Encode(resp); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecode decodes the request of BenchmarkHandler, the AdmissionReview and the pod in
// it: as the webhook does (decodeJSON, then decodeObject for the pod), with decodeJSON for both
// (the pod whole), and with the v1 decoder the API server's serializer uses (sigs.k8s.io/json,
// case-sensitive, integers kept), which the webhook used before.
func BenchmarkDecode(b *testing.B) {
	body := readFixture(b, "pod-training.json")
	v1 := kjson.UnmarshalCaseSensitivePreserveInts
	for _, d := range []struct {
		name           string
		review, object func([]byte, any) error
	}{
		{"decodeObject", decodeJSON, decodeObject},
		{"decodeJSON", decodeJSON, decodeJSON},
		{"v1", v1, v1},
	} {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				var ar admissionv1.AdmissionReview
				if err := d.review(body, &ar); err != nil {
					b.Fatal(err)
				}
				var pod corev1.Pod
				if err := d.object(ar.Request.Object.Raw, &pod); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// requestBody is a reusable request body.
type requestBody struct{ bytes.Reader }

func (*requestBody) Close() error { return nil }

// responseBuffer is a reusable http.ResponseWriter that keeps the body.
type responseBuffer struct {
	header http.Header
	bytes.Buffer
}

func (w *responseBuffer) Header() http.Header { return w.header }
func (w *responseBuffer) WriteHeader(int)     {}

// BenchmarkDenial measures refusals (an unknown credential) from concurrent clients, as the
// API server sends them, with no audit and with the durable audit file: the difference is
// what a durable record costs a refusal. denials/s is the throughput.
func BenchmarkDenial(b *testing.B) {
	body := readFixture(b, "pod-unknown-credential.json")
	for _, withAudit := range []bool{false, true} {
		b.Run(fmt.Sprintf("audit-file=%t", withAudit), func(b *testing.B) {
			m := newHandler(b, "Pod", newReviewer(b, testStore()))
			if withAudit {
				sink, err := audit.OpenFile(filepath.Join(b.TempDir(), "audit.log"), audit.FileOptions{})
				if err != nil {
					b.Fatal(err)
				}
				defer sink.Close()
				m.Audit = &audit.Auditor{Sinks: []audit.Sink{sink}}
			}
			h := newWebhook(b, m, logr.Discard())
			if resp, _ := serve(b, h, body); resp.Result.Code != http.StatusForbidden {
				b.Fatalf("the benchmark request is not refused: %d %s", resp.Result.Code, resp.Result.Message)
			}
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				rd := &requestBody{}
				w := &responseBuffer{header: http.Header{}}
				for pb.Next() {
					rd.Reset(body)
					req := httptest.NewRequestWithContext(b.Context(), http.MethodPost, "/mutate-v1-pod", rd)
					req.Header.Set("Content-Type", "application/json")
					w.Reset()
					h.ServeHTTP(w, req)
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "denials/s")
		})
	}
}
