package policies

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/internal/metrics"
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
			Buckets: metrics.DurationBuckets,
		}),
	}
	if err := metrics.Register(reg, "policy metrics", m.reloadErrors, m.revision, m.evalDuration); err != nil {
		return nil, err
	}
	return m, nil
}

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

// Watcher reloads the policy directory and the policy objects into Engine when they change.
// It polls, which sees a ConfigMap's atomic symlink swap as surely as an edit in place. A new
// revision is compiled, then evaluated on the canary inputs — the bundled samples and the
// inputs the engine saw recently — before it replaces the one serving. One that fails to load,
// compile or evaluate never replaces it: the failure is logged once per revision (with the file
// and line OPA gives) and counted by reason, and the watcher retries when the files change
// again.
//
// Policy objects are each judged on their own, against the files: the objects are isolated
// from each other (each compiles into a package of its own, which no other policy may read),
// so each generation passes or fails by itself, and one object never stops another. A
// generation that fails is set aside and the object is served at the generation this replica
// served, or the one its status says a replica served (Object.Fallback), if that one passes;
// ObjectStatuses says, for each object, what is served and why.
type Watcher struct {
	Dir string
	// Objects lists the policy objects to serve; nil for none.
	Objects  func(ctx context.Context) ([]Object, error)
	Interval time.Duration
	Engine   *Engine
	Metrics  *Metrics
	Log      logr.Logger

	failedLoad string // error of the last failed load, so it is reported once

	// verdicts are the outcomes of the files alone, and of each object version with them,
	// kept for the versions the last reload saw; failures are the revisions that failed as a
	// whole, by id.
	verdicts map[string]*verdict
	failures failureMemo
	// serving are the objects of the revision served, at the generation served.
	serving map[string]Object

	mu       sync.Mutex
	statuses map[string]ObjectStatus
	loaded   bool // a reload has placed every object
	changed  chan struct{}
}

// revisionFailure is why a revision, or an object with the files, fails.
type revisionFailure struct {
	err    error
	reason string // ReasonCompile, ReasonCanary, ...
	// expires is when it may be tried again (zero: never, unless it changes): a failure on
	// the recent inputs, or out of time, may not last.
	expires time.Time
}

// verdict is whether something passed: nil failure for yes.
type verdict struct {
	failure *revisionFailure
}

// failureMemo remembers the revisions that failed as a whole, the oldest forgotten first
// beyond maxFailures.
type failureMemo struct {
	byID  map[string]*revisionFailure
	order []string
}

func (m *failureMemo) get(id string, now time.Time) *revisionFailure {
	f := m.byID[id]
	if f == nil || !f.expires.IsZero() && now.After(f.expires) {
		return nil
	}
	return f
}

func (m *failureMemo) put(id string, f *revisionFailure) {
	if m.byID == nil {
		m.byID = map[string]*revisionFailure{}
	}
	if _, ok := m.byID[id]; !ok {
		m.order = append(m.order, id)
	}
	m.byID[id] = f
	for len(m.order) > maxFailures {
		delete(m.byID, m.order[0])
		m.order = m.order[1:]
	}
}

// DefaultReloadInterval is how often a Watcher without an Interval reloads.
const DefaultReloadInterval = 2 * time.Second

// maxFailures bounds the failed revisions a Watcher remembers.
const maxFailures = 64

// retryFailedCanary is how long a failure on the canary inputs stands before it is tried
// again: the recent inputs change, and a rule may only have run out of time on a loaded
// replica.
const retryFailedCanary = 5 * time.Minute

// ObjectStatus is what a Watcher serves of one policy object.
type ObjectStatus struct {
	// UID and Generation identify the object version this status describes.
	UID        string
	Generation int64
	// Served: the revision served holds this generation.
	Served bool
	// Reason and Message say why not (the v1alpha1 reasons), or Serving.
	Reason, Message string
	// Revision is the revision served.
	Revision string
	// Rules are the rule ids the served generation declares, if Served.
	Rules []string
	// ServedObject, when the current generation is not served, is the generation that is
	// (nil: none).
	ServedObject *Object
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every replica reloads.
func (w *Watcher) NeedLeaderElection() bool { return false }

// Start implements manager.Runnable: it reloads at once, then every Interval until ctx ends.
func (w *Watcher) Start(ctx context.Context) error {
	w.Metrics.Serving("", w.Engine.Current().ID())
	_, _ = w.Reload(ctx) // Reload logs and counts its failures
	interval := w.Interval
	if interval <= 0 {
		interval = DefaultReloadInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_, _ = w.Reload(ctx)
		}
	}
}

// Loaded returns nil once a reload has read the policy objects (and served them, or set
// aside those that fail): until then, the revision served lacks them. A readiness check.
func (w *Watcher) Loaded() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.loaded {
		return errors.New("the policy objects are not loaded yet")
	}
	return nil
}

// ObjectStatuses returns the status of every policy object the last reload read, by name.
func (w *Watcher) ObjectStatuses() map[string]ObjectStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.statuses)
}

// Changed returns a channel that receives when the objects' statuses change.
func (w *Watcher) Changed() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.changed == nil {
		w.changed = make(chan struct{}, 1)
	}
	return w.changed
}

// Reload compiles the directory's policies and the policy objects if they changed, runs the
// canary, and serves them. It reports whether a new revision is now served.
func (w *Watcher) Reload(ctx context.Context) (bool, error) {
	base, err := sources(w.Dir)
	if err != nil {
		if err.Error() == w.failedLoad {
			return false, err
		}
		w.failedLoad = err.Error()
		return false, w.fail("unreadable", reasonOf(err, ReasonLoad), err)
	}
	w.failedLoad = ""
	var objs []Object
	if w.Objects != nil {
		if objs, err = w.Objects(ctx); err != nil {
			w.Log.Error(err, "policy objects not read; the revision serving keeps serving")
			return false, err
		}
	}
	before := w.Engine.Current().ID()
	kept := map[string]*verdict{} // the verdicts this reload used: the others are forgotten
	defer func() { w.verdicts = kept }()

	// The files alone first: what every object is judged with.
	baseID := base.Revision()
	fresh, err := w.judge(kept, "files:"+baseID, func() (*revisionFailure, error) {
		_, f, err := w.check(ctx, base, "")
		return f, err
	})
	if err != nil {
		return false, err
	}
	if f := kept["files:"+baseID].failure; f != nil {
		w.setStatuses(objs, nil, f)
		if fresh {
			return false, w.fail(baseID, f.reason, f.err)
		}
		return false, nil
	}

	// Each object with the files: its current generation, else the one served, else none.
	blamed := map[string]ObjectStatus{}
	use := map[string]Object{}
	for _, o := range objs {
		if _, clash := base.Objects[o.Name]; clash {
			blamed[o.Name] = ObjectStatus{Reason: v1alpha1.ReasonInvalidSpec,
				Message: "a CredentialPolicy file of the policy directory has this name: rename one"}
			continue
		}
		f, fresh, err := w.judgeObject(ctx, kept, base, baseID, o)
		if err != nil {
			return false, err
		}
		if f == nil {
			use[o.Name] = o
			continue
		}
		st := ObjectStatus{Reason: objectReason(f), Message: objectMessage(f.err, o.Name)}
		for _, alt := range w.older(o) {
			if af, _, err := w.judgeObject(ctx, kept, base, baseID, alt); err != nil {
				return false, err
			} else if af == nil {
				use[o.Name], st.ServedObject = alt, &alt
				break
			}
		}
		blamed[o.Name] = st
		if fresh {
			w.logBlamed(o.Name, st.ServedObject, f)
		}
	}

	// All of them: each passed with the files, and none can read another.
	whole, fresh, err := w.try(ctx, base, use)
	if err != nil {
		return false, err
	}
	w.setStatuses(objs, blamed, whole)
	if whole != nil && fresh {
		return false, whole.err
	}
	return w.Engine.Current().ID() != before, nil
}

// older returns the generations of o that may serve while o does not: the one this replica
// serves, then the one o's status says a replica served.
func (w *Watcher) older(o Object) []Object {
	var out []Object
	if s, ok := w.serving[o.Name]; ok && s.UID == o.UID && s.Generation < o.Generation {
		out = append(out, s)
	}
	if fb := o.Fallback; fb != nil && fb.Generation < o.Generation && (len(out) == 0 || out[0].Generation != fb.Generation) {
		alt := *fb
		alt.Name, alt.UID, alt.Fallback = o.Name, o.UID, nil
		out = append(out, alt)
	}
	return out
}

// judge returns whether key's verdict was reached now (a failure then newly found), running
// run unless this reload or the last one reached a verdict that still stands.
func (w *Watcher) judge(kept map[string]*verdict, key string, run func() (*revisionFailure, error)) (bool, error) {
	if _, ok := kept[key]; ok {
		return false, nil
	}
	if v, ok := w.verdicts[key]; ok && (v.failure == nil || v.failure.expires.IsZero() || time.Now().Before(v.failure.expires)) {
		kept[key] = v
		return false, nil
	}
	f, err := run()
	if err != nil {
		return false, err
	}
	kept[key] = &verdict{failure: f}
	return true, nil
}

// judgeObject is the verdict on o with the files of base.
func (w *Watcher) judgeObject(ctx context.Context, kept map[string]*verdict, base Source, baseID string, o Object) (*revisionFailure, bool, error) {
	key := "object:" + baseID + ":" + ObjectsSource([]Object{o}).Revision()
	fresh, err := w.judge(kept, key, func() (*revisionFailure, error) {
		src, err := Merge(base, ObjectsSource([]Object{o}))
		if err != nil {
			return &revisionFailure{err: err, reason: ReasonLoad}, nil
		}
		_, f, err := w.check(ctx, src, o.Name)
		return f, err
	})
	if err != nil {
		return nil, false, err
	}
	return kept[key].failure, fresh, nil
}

// check compiles src and runs the canary: on everything (object ""), or on the object named
// object only — every sample input, and the recent inputs of the namespaces it selects, as
// it would serve them. It returns the revision, or why it fails, or an error when ctx ended.
func (w *Watcher) check(ctx context.Context, src Source, object string) (*Revision, *revisionFailure, error) {
	rev, err := Compile(ctx, src)
	if err != nil {
		return nil, &revisionFailure{err: err, reason: reasonOf(err, ReasonCompile)}, nil
	}
	timeout := w.Engine.Timeout
	if timeout <= 0 {
		timeout = EvalTimeout
	}
	canary := append(SampleInputs(), w.Engine.recentCanaryInputs()...)
	if object == "" {
		err = rev.Canary(ctx, canary, timeout)
	} else {
		err = rev.CanaryObject(ctx, object, canary, timeout)
	}
	if err == nil {
		return rev, nil, nil
	}
	if ctx.Err() != nil {
		return nil, nil, ctx.Err() // shutting down: nothing failed
	}
	return nil, &revisionFailure{err: fmt.Errorf("policies fail to evaluate %w", err), reason: ReasonCanary,
		expires: time.Now().Add(retryFailedCanary)}, nil
}

// try serves base with the objects of use, unless that is what is served already. It
// returns why that revision fails, and whether that was found now (and logged); or an error
// when ctx ended.
func (w *Watcher) try(ctx context.Context, base Source, use map[string]Object) (*revisionFailure, bool, error) {
	src, err := Merge(base, ObjectsSource(slices.Collect(maps.Values(use))))
	if err != nil {
		return &revisionFailure{err: err, reason: ReasonLoad}, false, nil
	}
	id := src.Revision()
	if id == w.Engine.Current().ID() {
		w.serving = maps.Clone(use)
		return nil, false, nil
	}
	if f := w.failures.get(id, time.Now()); f != nil {
		return f, false, nil
	}
	rev, f, err := w.check(ctx, src, "")
	if err != nil {
		return nil, false, err
	}
	if f != nil {
		w.failures.put(id, f)
		w.fail(id, f.reason, f.err) //nolint:errcheck // fail returns its argument
		return f, true, nil
	}
	old := w.Engine.Current().ID()
	w.Engine.Swap(rev)
	w.serving = maps.Clone(use)
	w.Metrics.Serving(old, id)
	w.Log.Info("policies reloaded", "revision", id, "previous", old, "modules", rev.modules, "objects", len(src.Objects))
	return nil, false, nil
}

// objectReason is the status reason of an object a failure is blamed on.
func objectReason(f *revisionFailure) string {
	switch {
	case f.reason == ReasonCanary:
		return v1alpha1.ReasonEvaluationError
	case isSpecError(f.err):
		return v1alpha1.ReasonInvalidSpec
	default:
		return v1alpha1.ReasonCompileError
	}
}

// logBlamed logs that an object's generation is set aside (once: when found).
func (w *Watcher) logBlamed(name string, instead *Object, f *revisionFailure) {
	kv := []any{"policy", name, "reason", objectReason(f)}
	if instead != nil {
		kv = append(kv, "servedGeneration", instead.Generation)
	}
	w.Log.Error(f.err, "policy object not served: the generation served before, if any, keeps serving", kv...)
}

// setStatuses records what is served of each object of objs: blamed says why those set
// aside are; whole, when set, why no new revision is served (each object then stays as the
// revision serving has it).
func (w *Watcher) setStatuses(objs []Object, blamed map[string]ObjectStatus, whole *revisionFailure) {
	rev := w.Engine.Current()
	statuses := make(map[string]ObjectStatus, len(objs))
	for _, o := range objs {
		st, isBlamed := blamed[o.Name]
		s, served := w.serving[o.Name]
		served = served && s.UID == o.UID
		switch {
		case served && s.Generation == o.Generation:
			st = ObjectStatus{Served: true, Reason: v1alpha1.ReasonServing, Rules: rev.objectRules(o.Name)}
		case isBlamed && whole == nil:
		case isBlamed:
			st.ServedObject = nil
		case whole != nil:
			st = ObjectStatus{Reason: v1alpha1.ReasonRevisionFailed,
				Message: "not served: the policies fail with it (credgate's log has the details); the revision served before keeps serving"}
		default:
			st = ObjectStatus{Reason: v1alpha1.ReasonRevisionFailed, Message: "not served yet"}
		}
		if !st.Served && served && s.Generation < o.Generation {
			st.ServedObject = &s // what the revision serving has of it
		}
		st.UID, st.Generation, st.Revision = o.UID, o.Generation, rev.ID()
		statuses[o.Name] = st
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	// Ready once every object is served or set aside on its own account.
	w.loaded = w.loaded || whole == nil
	if !maps.EqualFunc(w.statuses, statuses, func(a, b ObjectStatus) bool {
		return a.UID == b.UID && a.Generation == b.Generation && a.Served == b.Served && a.Reason == b.Reason && a.Message == b.Message &&
			a.Revision == b.Revision && slices.Equal(a.Rules, b.Rules) &&
			(a.ServedObject == nil) == (b.ServedObject == nil) && (a.ServedObject == nil || a.ServedObject.Generation == b.ServedObject.Generation)
	}) {
		w.statuses = statuses
		if w.changed == nil {
			w.changed = make(chan struct{}, 1)
		}
		select {
		case w.changed <- struct{}{}:
		default:
		}
	}
}

// truncate cuts s to at most n bytes, on a character boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
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
