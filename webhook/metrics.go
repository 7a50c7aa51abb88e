package webhook

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/credgate/credgate/internal/metrics"
	"github.com/credgate/credgate/review"
)

// Decisions, the decision label of credgate_admission_requests_total.
const (
	decisionAllowed = "allowed" // admitted, nothing to change
	decisionPatched = "patched" // admitted with credentials injected
	decisionDenied  = "denied"
	decisionInvalid = "invalid" // 400: the request was malformed
	decisionError   = "error"   // 500: credgate failed; the failure policy decides
)

// Metrics are the admission handlers' Prometheus metrics.
type Metrics struct {
	requests   *prometheus.CounterVec
	duration   *prometheus.HistogramVec
	denials    *prometheus.CounterVec
	injections *prometheus.CounterVec
	reused     *prometheus.CounterVec
}

// NewMetrics registers the admission metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credgate_admission_requests_total",
			Help: "Admission requests, by webhook path, operation and decision (allowed, patched, denied, invalid, error).",
		}, []string{"webhook", "operation", "decision"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "credgate_admission_duration_seconds",
			Help:    "Time to answer an admission request, by webhook path.",
			Buckets: metrics.DurationBuckets,
		}, []string{"webhook"}),
		denials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credgate_denials_total",
			Help: "Violations that refused an admission, by rule id.",
		}, []string{"rule"}),
		injections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credgate_injections_total",
			Help: "Credentials injected into pods by the mutating webhook, by credential type.",
		}, []string{"type"}),
		reused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credgate_admission_reused_total",
			Help: "Admissions answered with the decision of an identical one (a Job's next pod: review.Decisions), by webhook path.",
		}, []string{"webhook"}),
	}
	if err := metrics.Register(reg, "admission metrics", m.requests, m.duration, m.denials, m.injections, m.reused); err != nil {
		return nil, err
	}
	return m, nil
}

// observe records one answered request, with the decision reused when reused.
func (m *Metrics) observe(path string, req admission.Request, resp admission.Response, d *review.Decision, reused bool, start time.Time) {
	if m == nil {
		return
	}
	if reused {
		m.reused.WithLabelValues(path).Inc()
	}
	m.duration.WithLabelValues(path).Observe(time.Since(start).Seconds())
	decision := decisionAllowed
	switch code := resp.Result; {
	case code != nil && code.Code == http.StatusBadRequest:
		decision = decisionInvalid
	case code != nil && code.Code >= http.StatusInternalServerError:
		decision = decisionError
	case !resp.Allowed:
		decision = decisionDenied
	case len(resp.Patches) > 0 || len(resp.Patch) > 0:
		decision = decisionPatched
	}
	m.requests.WithLabelValues(path, strings.ToLower(string(req.Operation)), decision).Inc()
	if d == nil {
		return
	}
	if decision == decisionDenied {
		for _, v := range d.Violations {
			m.denials.WithLabelValues(v.Rule).Inc()
		}
	}
	// Injections happen in pods; a workload's patch only copies labels into its template.
	if decision == decisionPatched && req.Kind.Kind == "Pod" {
		for _, r := range d.Resolved {
			m.injections.WithLabelValues(string(r.Type)).Inc()
		}
	}
}
