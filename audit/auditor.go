package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credgate/credgate/internal/metrics"
)

// Sink receives audit lines: one JSON document each, without its newline. Write returns
// once the line is as durable as the sink makes it.
type Sink interface {
	Write(ctx context.Context, line []byte) error
}

var (
	_ Sink = (*FileSink)(nil)
	_ Sink = (*WriterSink)(nil)
)

// WriterSink writes lines to a stream such as stdout, one write per line, so that
// `kubectl logs deploy/credgate | credgate audit` reads them back.
type WriterSink struct {
	mu sync.Mutex
	w  io.Writer
}

// NewWriterSink returns a sink writing to w.
func NewWriterSink(w io.Writer) *WriterSink { return &WriterSink{w: w} }

// Write implements Sink.
func (s *WriterSink) Write(_ context.Context, line []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	buf := make([]byte, 0, len(line)+1)
	if _, err := s.w.Write(append(append(buf, line...), '\n')); err != nil {
		return fmt.Errorf("write audit record: %w", err)
	}
	return nil
}

// OnError is what an admission does when its audit record cannot be written.
type OnError string

const (
	// Refuse fails the admission (the webhook answers 500; the failure policy refuses it): no
	// workload is admitted without its record. The default.
	Refuse OnError = "refuse"
	// Admit admits what the decision admits and counts the lost record.
	Admit OnError = "admit"
)

// ParseOnError reads an OnError from a flag.
func ParseOnError(s string) (OnError, error) {
	switch o := OnError(s); o {
	case Refuse, Admit:
		return o, nil
	}
	return "", fmt.Errorf("audit failure action %q: use %s or %s", s, Refuse, Admit)
}

// Auditor writes records to its sinks.
type Auditor struct {
	Sinks []Sink
	// Allowed also records admissions that found no violation (admission_allowed).
	Allowed bool
	// OnError is consulted by the webhook when Record fails; empty means Refuse.
	OnError OnError
	// Metrics, when set, counts records and write errors.
	Metrics *Metrics
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Wants reports whether an event is recorded.
func (a *Auditor) Wants(e Event) bool {
	return a != nil && len(a.Sinks) > 0 && (e != EventAllowed || a.Allowed)
}

// Record stamps r with the schema version and the time, and writes it to every sink. It
// returns an error if any sink failed; the others still got the record.
func (a *Auditor) Record(ctx context.Context, r *Record) error {
	r.Version = SchemaVersion
	if a.Now != nil {
		r.Time = a.Now().UTC()
	} else {
		r.Time = time.Now().UTC()
	}
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encode audit record: %w", err)
	}
	var errs []error
	for _, s := range a.Sinks {
		if err := s.Write(ctx, line); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		a.Metrics.writeError()
		return err
	}
	a.Metrics.record(r.Event)
	return nil
}

// FailClosed reports whether an admission whose record failed must be refused.
func (a *Auditor) FailClosed() bool { return a.OnError != Admit }

// Metrics are the audit's Prometheus metrics.
type Metrics struct {
	records     *prometheus.CounterVec
	writeErrors prometheus.Counter
}

// NewMetrics registers the audit metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		records: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credgate_audit_records_total",
			Help: "Audit records written, by event.",
		}, []string{"event"}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "credgate_audit_write_errors_total",
			Help: "Audit records that at least one sink failed to write.",
		}),
	}
	if err := metrics.Register(reg, "audit metrics", m.records, m.writeErrors); err != nil {
		return nil, err
	}
	for _, e := range Events {
		m.records.WithLabelValues(string(e))
	}
	return m, nil
}

func (m *Metrics) record(e Event) {
	if m != nil {
		m.records.WithLabelValues(string(e)).Inc()
	}
}

func (m *Metrics) writeError() {
	if m != nil {
		m.writeErrors.Inc()
	}
}

// Records is the records counter of event, for tests and dashboards.
func (m *Metrics) Records(e Event) prometheus.Counter { return m.records.WithLabelValues(string(e)) }

// WriteErrors is the write error counter.
func (m *Metrics) WriteErrors() prometheus.Counter { return m.writeErrors }
