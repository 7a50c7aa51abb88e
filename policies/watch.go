package policies

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
)

// Load compiles the built-in rules together with the user policies of dir (none when dir is
// empty), and evaluates the revision on the bundled sample inputs (the canary, each within
// EvalTimeout): with no revision serving yet to fall back on, policies that do not load,
// compile or evaluate are an error.
func Load(ctx context.Context, dir string) (*Revision, error) {
	src, err := sources(dir)
	if err != nil {
		return nil, err
	}
	rev, err := Compile(ctx, src)
	if err != nil {
		return nil, err
	}
	if err := rev.Canary(ctx, SampleInputs(), EvalTimeout); err != nil {
		return nil, fmt.Errorf("policies %s fail to evaluate %w", rev.ID(), err)
	}
	return rev, nil
}

func sources(dir string) (Source, error) {
	user, err := LoadDir(dir)
	if err != nil {
		return Source{}, err
	}
	return Merge(Builtin(), user)
}

// Reload failure reasons, the reason label of credgate_policy_reload_errors_total.
const (
	// ReasonLoad: the directory or a data file could not be read.
	ReasonLoad = "load"
	// ReasonReserved: a file declares a package, or data, reserved for credgate.
	ReasonReserved = "reserved"
	// ReasonCompile: a module does not parse or compile.
	ReasonCompile = "compile"
	// ReasonCanary: the revision compiles but its evaluation fails on a canary input.
	ReasonCanary = "canary"
)

// Metrics are the policy layer's Prometheus metrics.
type Metrics struct {
	reloadErrors *prometheus.CounterVec
	revision     *prometheus.GaugeVec
	evalDuration prometheus.Histogram
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		reloadErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credgate_policy_reload_errors_total",
			Help: "Policy reloads that failed, by reason (load, reserved, compile, canary); the previous revision kept serving.",
		}, []string{"reason"}),
		revision: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "credgate_policy_revision_info",
			Help: "The policy revision being served (value 1).",
		}, []string{"revision"}),
		evalDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "credgate_policy_evaluation_duration_seconds",
			Help:    "Time to evaluate the policies for one admission.",
			Buckets: DurationBuckets,
		}),
	}
	for _, c := range []prometheus.Collector{m.reloadErrors, m.revision, m.evalDuration} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register policy metrics: %w", err)
		}
	}
	return m, nil
}

// DurationBuckets are the histogram buckets of admission and policy timings: fine below 10 ms,
// where a healthy admission falls, coarse up to the webhook timeout.
var DurationBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5}

// Serving records rev as the revision served, replacing old ("" for none).
func (m *Metrics) Serving(old, rev string) {
	if m == nil {
		return
	}
	if old != "" {
		m.revision.DeleteLabelValues(old)
	}
	m.revision.WithLabelValues(rev).Set(1)
}

func (m *Metrics) failed(reason string) {
	if m != nil {
		m.reloadErrors.WithLabelValues(reason).Inc()
	}
}

// Watcher reloads the policy directory into Engine when its files change. It polls, which
// sees a ConfigMap's atomic symlink swap as surely as an edit in place. A new revision is
// compiled, then evaluated on the canary inputs — the bundled samples and the inputs the
// engine saw recently — before it replaces the one serving. One that fails to load, compile
// or evaluate never replaces it: the failure is logged once per revision (with the file and
// line OPA gives) and counted by reason, and the watcher retries when the files change again.
type Watcher struct {
	Dir      string
	Interval time.Duration
	Engine   *Engine
	Metrics  *Metrics
	Log      logr.Logger

	failed     string // revision that last failed to compile or evaluate
	failedLoad string // error of the last failed load, so it is reported once
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every replica reloads.
func (w *Watcher) NeedLeaderElection() bool { return false }

// Start implements manager.Runnable: it reloads every Interval until ctx ends.
func (w *Watcher) Start(ctx context.Context) error {
	w.Metrics.Serving("", w.Engine.Current().ID())
	t := time.NewTicker(w.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_, _ = w.Reload(ctx) // Reload logs and counts its failures
		}
	}
}

// Reload compiles the directory's policies if they changed, runs the canary, and serves them.
// It reports whether a new revision is now served.
func (w *Watcher) Reload(ctx context.Context) (bool, error) {
	src, err := sources(w.Dir)
	if err != nil {
		if err.Error() == w.failedLoad {
			return false, err
		}
		w.failedLoad = err.Error()
		return false, w.fail("unreadable", reasonOf(err, ReasonLoad), err)
	}
	w.failedLoad = ""
	id := src.Revision()
	old := w.Engine.Current().ID()
	if id == old || id == w.failed {
		return false, nil
	}
	rev, err := Compile(ctx, src)
	if err != nil {
		w.failed = id
		return false, w.fail(id, reasonOf(err, ReasonCompile), err)
	}
	timeout := w.Engine.Timeout
	if timeout <= 0 {
		timeout = EvalTimeout
	}
	canary := append(SampleInputs(), w.Engine.recentCanaryInputs()...)
	if err := rev.Canary(ctx, canary, timeout); err != nil {
		if ctx.Err() != nil {
			return false, err // shutting down: nothing failed
		}
		// A revision that only ran out of time (a loaded replica) is tried again at the next
		// interval; one that errored is not, until the files change.
		if !errors.Is(err, context.DeadlineExceeded) {
			w.failed = id
		}
		return false, w.fail(id, ReasonCanary, fmt.Errorf("policies fail to evaluate %w", err))
	}
	w.failed = ""
	w.Engine.Swap(rev)
	w.Metrics.Serving(old, id)
	w.Log.Info("policies reloaded", "revision", id, "previous", old, "modules", rev.modules, "canaryInputs", len(canary))
	return true, nil
}

// reasonOf is the reason label of err: reserved for a *ReservedError, otherwise def.
func reasonOf(err error, def string) string {
	var re *ReservedError
	if errors.As(err, &re) {
		return ReasonReserved
	}
	return def
}

func (w *Watcher) fail(revision, reason string, err error) error {
	w.Metrics.failed(reason)
	kv := []any{"revision", revision, "serving", w.Engine.Current().ID(), "reason", reason}
	if file, line, ok := errorLocation(err); ok {
		kv = append(kv, "file", file, "line", line)
	}
	w.Log.Error(err, "policies not reloaded; the previous revision keeps serving", kv...)
	return err
}
