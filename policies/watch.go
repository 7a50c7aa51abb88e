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
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/credgate/credgate/api/v1alpha1"
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

// Watcher reloads the policy directory and the policy objects into Engine when they change.
// It polls, which sees a ConfigMap's atomic symlink swap as surely as an edit in place. A new
// revision is compiled, then evaluated on the canary inputs — the bundled samples and the
// inputs the engine saw recently — before it replaces the one serving. One that fails to load,
// compile or evaluate never replaces it: the failure is logged once per revision (with the file
// and line OPA gives) and counted by reason, and the watcher retries when the files change
// again.
//
// A policy object the failure is blamed on (its file, policy/<name>.rego, is in the error) is
// set aside instead: the revision is compiled again with the object's last good generation
// (or without it, if it never compiled), so that one broken object neither stops the others'
// changes nor loses what it enforced. ObjectStatuses says, for each object, what is served.
type Watcher struct {
	Dir string
	// Objects lists the policy objects to serve; nil for none.
	Objects  func(ctx context.Context) ([]Object, error)
	Interval time.Duration
	Engine   *Engine
	Metrics  *Metrics
	Log      logr.Logger

	failedLoad string // error of the last failed load, so it is reported once

	// failures are the revisions that failed, by id.
	failures failureMemo
	// serving are the objects of the revision served, at the generation served.
	serving map[string]Object
	// found are the revisions the reload in progress found failing.
	found map[string]bool

	mu       sync.Mutex
	statuses map[string]ObjectStatus
	loaded   bool // a reload has read the objects
	changed  chan struct{}
}

// revisionFailure is why a revision failed, kept so that it is not compiled again.
type revisionFailure struct {
	err    error
	reason string // ReasonCompile, ReasonCanary, ...
	id     string // the revision
	// expires is when the revision may be tried again (zero: never, unless it changes).
	expires time.Time
}

// failureMemo remembers the revisions that failed, the oldest forgotten first beyond
// maxFailures.
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

// byIDHas says whether id is remembered, failing with err's text.
func (m *failureMemo) byIDHas(id string, err error) bool {
	f := m.byID[id]
	return f != nil && f.err.Error() == err.Error()
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
const maxFailures = 256

// ObjectStatus is what a Watcher serves of one policy object.
type ObjectStatus struct {
	// Generation is the object's generation this status describes.
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
//
// The objects served stay served at the generation served until a newer one passes; a
// changed or new object that fails is set aside (its served generation, if any, keeps
// serving). Blame comes from where the errors locate themselves; a failure located in no
// changed object is narrowed down by adding the changed objects one at a time to what is
// served. So one object never stops another, and a revision failure that is no object's (a
// broken policy file) keeps the revision serving, and its objects, as they were.
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
	w.found = map[string]bool{} // the failures this reload finds (the others were reported)
	blamed := map[string]ObjectStatus{}
	current := make(map[string]Object, len(objs))
	for _, o := range objs {
		if _, clash := base.Objects[o.Name]; clash {
			blamed[o.Name] = ObjectStatus{Reason: v1alpha1.ReasonInvalidSpec,
				Message: "a CredentialPolicy file of the policy directory has this name: rename one"}
			continue
		}
		current[o.Name] = o
	}
	// What is served, of the objects still there; and what changed. An object this replica
	// has not served at any generation is served at the one another served (its Fallback),
	// until its current generation passes.
	served := map[string]Object{}
	for n, o := range w.serving {
		if c, ok := current[n]; ok && c.UID == o.UID {
			served[n] = o
		}
	}
	fallback := map[string]Object{}
	for n, c := range current {
		if _, ok := served[n]; !ok && c.Fallback != nil && c.Fallback.Generation < c.Generation {
			fb := *c.Fallback
			fb.Name, fb.UID, fb.Fallback = n, c.UID, nil
			fallback[n] = fb
		}
	}
	var changed []string
	for _, n := range slices.Sorted(maps.Keys(current)) {
		if !sameObject(served[n], current[n]) {
			changed = append(changed, n)
		}
	}
	setAside := func(use map[string]Object, n string, f *revisionFailure) {
		st := ObjectStatus{Reason: objectReason(f), Message: objectMessage(f.err, n)}
		s, ok := served[n]
		if !ok {
			s, ok = fallback[n]
		}
		if ok {
			use[n] = s
			st.ServedObject = &s
		} else {
			delete(use, n)
		}
		blamed[n] = st
		if w.found[f.id] { // newly found: logged once
			w.logBlamed(n, s, f)
		}
	}

	// Everything at once, setting aside the changed objects the failures locate themselves in.
	use := maps.Clone(served)
	for _, n := range changed {
		use[n] = current[n]
	}
	var unplaced *revisionFailure
	for {
		f, err := w.try(ctx, base, use)
		if err != nil {
			return false, err
		}
		if f == nil {
			break
		}
		var guilty []string
		for _, n := range blamedObjects(f.err) {
			if slices.Contains(changed, n) && sameObject(use[n], current[n]) {
				guilty = append(guilty, n)
			}
		}
		if len(guilty) == 0 {
			unplaced = f
			break
		}
		for _, n := range guilty {
			setAside(use, n, f)
		}
	}
	// A failure no changed object is located in: what is served, then each changed object
	// that is left, one at a time.
	var whole *revisionFailure
	if unplaced != nil {
		trial := maps.Clone(served)
		f, err := w.try(ctx, base, trial)
		if err != nil {
			return false, err
		}
		whole = f
		for _, n := range changed {
			if whole != nil || !sameObject(use[n], current[n]) {
				continue // already set aside
			}
			trial[n] = current[n]
			f, err := w.try(ctx, base, trial)
			if err != nil {
				return false, err
			}
			if f != nil {
				setAside(trial, n, f)
			}
		}
	}
	w.setStatuses(objs, current, blamed, whole)
	if whole != nil && w.found[whole.id] {
		return false, whole.err
	}
	return w.Engine.Current().ID() != before, nil
}

// try serves base with the objects of use, unless that is what is served already; it returns
// why that revision fails (remembered), or an error when the attempt itself ended: ctx done.
func (w *Watcher) try(ctx context.Context, base Source, use map[string]Object) (*revisionFailure, error) {
	src, err := Merge(base, ObjectsSource(slices.Collect(maps.Values(use))))
	if err != nil {
		f := &revisionFailure{err: err, reason: ReasonLoad, id: "unmergeable"}
		if !w.failures.byIDHas(f.id, err) {
			w.found[f.id] = true
			w.failures.put(f.id, f)
			w.fail(f.id, f.reason, err) //nolint:errcheck // fail returns its argument
		}
		return f, nil
	}
	id := src.Revision()
	if id == w.Engine.Current().ID() {
		w.serving = maps.Clone(use)
		return nil, nil
	}
	if f := w.failures.get(id, time.Now()); f != nil {
		return f, nil
	}
	remember := func(f *revisionFailure) *revisionFailure {
		f.id = id
		w.found[id] = true
		w.failures.put(id, f)
		w.fail(id, f.reason, f.err) //nolint:errcheck // fail returns its argument
		return f
	}
	rev, err := Compile(ctx, src)
	if err != nil {
		return remember(&revisionFailure{err: err, reason: reasonOf(err, ReasonCompile)}), nil
	}
	timeout := w.Engine.Timeout
	if timeout <= 0 {
		timeout = EvalTimeout
	}
	canary := append(SampleInputs(), w.Engine.recentCanaryInputs()...)
	if err := rev.Canary(ctx, canary, timeout); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err() // shutting down: nothing failed
		}
		f := &revisionFailure{err: fmt.Errorf("policies fail to evaluate %w", err), reason: ReasonCanary}
		if errors.Is(err, context.DeadlineExceeded) || topdown.IsCancel(err) {
			// Out of time: a runaway rule, or a loaded replica; tried again in a while.
			f.expires = time.Now().Add(retryTimedOut)
		}
		return remember(f), nil
	}
	old := w.Engine.Current().ID()
	w.Engine.Swap(rev)
	w.serving = maps.Clone(use)
	w.Metrics.Serving(old, id)
	w.Log.Info("policies reloaded", "revision", id, "previous", old, "modules", rev.modules, "objects", len(src.Objects), "canaryInputs", len(canary))
	return nil, nil
}

// retryTimedOut is how long a revision whose canary ran out of time is not tried again.
const retryTimedOut = time.Minute

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

// logBlamed logs, once per generation, that an object is set aside.
func (w *Watcher) logBlamed(name string, instead Object, f *revisionFailure) {
	kv := []any{"policy", name, "reason", objectReason(f)}
	if instead.Name != "" {
		kv = append(kv, "servedGeneration", instead.Generation)
	}
	w.Log.Info("policy object not served: its last good generation, if any, keeps serving", append(kv, "error", objectMessage(f.err, name))...)
}

// setStatuses records what is served of each object of objs (current: those not refused
// outright).
func (w *Watcher) setStatuses(objs []Object, current map[string]Object, blamed map[string]ObjectStatus, whole *revisionFailure) {
	rev := w.Engine.Current()
	statuses := make(map[string]ObjectStatus, len(objs))
	for _, o := range objs {
		st, isBlamed := blamed[o.Name]
		switch {
		case isBlamed:
			if st.ServedObject != nil && !sameObject(w.serving[o.Name], *st.ServedObject) {
				st.ServedObject = nil // set aside, but not served after all (the revision failed)
			}
		case sameObject(w.serving[o.Name], current[o.Name]):
			st = ObjectStatus{Served: true, Reason: v1alpha1.ReasonServing, Rules: rev.objectRules(o.Name)}
		case whole != nil:
			st = ObjectStatus{Reason: v1alpha1.ReasonRevisionFailed,
				Message: "not served: the policies fail with it or without it (a file of the policy directory?); the previous revision keeps serving, and credgate's log has the details"}
		default:
			st = ObjectStatus{Reason: v1alpha1.ReasonRevisionFailed, Message: "not served yet"}
		}
		st.Generation, st.Revision = o.Generation, rev.ID()
		statuses[o.Name] = st
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	// Ready once every object is served or set aside on its own account.
	w.loaded = w.loaded || whole == nil
	if !maps.EqualFunc(w.statuses, statuses, func(a, b ObjectStatus) bool {
		return a.Generation == b.Generation && a.Served == b.Served && a.Reason == b.Reason && a.Message == b.Message &&
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

// sameObject says whether a and b are the same generation of the same object.
func sameObject(a, b Object) bool {
	return a.Name == b.Name && a.UID == b.UID && a.Generation == b.Generation && a.Name != ""
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
