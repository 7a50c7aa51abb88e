package policies

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestSampleInputs: the bundled canary inputs parse, the built-in rules evaluate each without
// error, and each makes the built-ins decide what its shape asks for — they are inputs as
// credgate builds them, not empty shells.
func TestSampleInputs(t *testing.T) {
	rev, err := Compile(t.Context(), Builtin())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"sample training-pod.json": {"warn static-credentials"},
		"sample job-every-cloud.json": {"deny conflicting-env", "deny multiple-cloud-identities", "deny service-account-not-allowed",
			"deny static-credentials"},
		"sample pod-unknown-credential.json": {"deny unknown-credential"},
		"sample cronjob-admin-expired.json": {"deny admin-scoped-credential", "deny conflicting-env", "deny conflicting-mount", "deny credential-not-ready",
			"deny multiple-cloud-identities", "deny service-account-not-allowed", "warn multiple-cloud-identities"},
	}
	samples := SampleInputs()
	if len(samples) != len(want) {
		t.Errorf("%d sample inputs, want %d", len(samples), len(want))
	}
	for _, s := range samples {
		res, err := rev.Evaluate(t.Context(), s.Value)
		if err != nil {
			t.Errorf("%s: %v", s.Name, err)
			continue
		}
		got := map[string]bool{}
		for _, v := range res.Deny {
			got["deny "+v.Rule] = true
		}
		for _, v := range res.Warn {
			got["warn "+v.Rule] = true
		}
		if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, want[s.Name]) {
			t.Errorf("%s: the built-ins decide %v, want %v", s.Name, keys, want[s.Name])
		}
	}
}

// conflicting are user policies that compile but fail every evaluation.
var conflicting = map[string]string{
	// Two complete rules giving different values: eval_conflict_error.
	"complete-rules": `package credgate.admission

level := "strict" if input.request.operation == "CREATE"

level := "lenient" if count(input.credentials) > 0

deny contains {"rule": "level", "message": level} if level == "strict"
`,
	// A function giving two outputs for one input: eval_conflict_error.
	"function": `package credgate.admission

tier(_) := "gold"

tier(x) := "silver" if x != ""

warn contains {"rule": "tier", "message": tier(input.request.namespace)} if true
`,
}

// TestLoadRefusesPolicyFailingToEvaluate: with no revision serving yet, policies that compile
// but fail to evaluate the bundled samples are an error, as a compile error is, naming the file
// and line.
func TestLoadRefusesPolicyFailingToEvaluate(t *testing.T) {
	for name, policy := range conflicting {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			writeFile(t, dir, "conflict.rego", policy)
			rev, err := Load(t.Context(), dir)
			if err == nil {
				t.Fatalf("Load served revision %s", rev.ID())
			}
			var ce *CanaryError
			if !errors.As(err, &ce) || !strings.HasPrefix(ce.Input, "sample ") {
				t.Errorf("error %v, want a canary error on a sample input", err)
			}
			if file, line, ok := errorLocation(err); !ok || file != "user/conflict.rego" || line == 0 {
				t.Errorf("error located at %s:%d (%t), want user/conflict.rego", file, line, ok)
			}
			if !strings.Contains(err.Error(), "eval_conflict_error") || !strings.Contains(err.Error(), "user/conflict.rego:") {
				t.Errorf("error %q does not say what failed where", err)
			}
		})
	}
}

// TestWatcherKeepsServingWhenCanaryFails: a revision that compiles but fails to evaluate never
// replaces the one serving; it is counted as a canary failure, logged once with its file and
// line, and the next good revision is served.
func TestWatcherKeepsServingWhenCanaryFails(t *testing.T) {
	for name, policy := range conflicting {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			w, logs := newTestWatcher(t, dir)
			first := w.Engine.Current().ID()

			writeFile(t, dir, "conflict.rego", policy)
			if ok, err := w.Reload(t.Context()); ok || err == nil {
				t.Fatalf("Reload = %t, %v; want the revision refused", ok, err)
			}
			for range 3 { // reloads with the files unchanged neither serve nor report it again
				if ok, _ := w.Reload(t.Context()); ok {
					t.Fatal("a later Reload served the refused revision")
				}
			}
			if got := w.Engine.Current().ID(); got != first {
				t.Errorf("serving %s, want the previous revision %s", got, first)
			}
			if got := testutil.ToFloat64(w.Metrics.reloadErrors.WithLabelValues(ReasonCanary)); got != 1 {
				t.Errorf("canary reload errors = %v, want 1", got)
			}
			if got := testutil.CollectAndCount(w.Metrics.reloadErrors); got != 1 {
				t.Errorf("%d reload error series, want only reason=canary", got)
			}
			if l := logs.String(); strings.Count(l, "policies not reloaded") != 1 || !strings.Contains(l, `"reason"="canary"`) ||
				!strings.Contains(l, `"file"="user/conflict.rego"`) || !strings.Contains(l, `"line"=`) {
				t.Errorf("log does not report the failure once with its file and line:\n%s", l)
			}
			// The engine still evaluates, on the previous revision.
			if _, err := w.Engine.Evaluate(t.Context(), SampleInputs()[0].Value); err != nil {
				t.Errorf("the previous revision fails: %v", err)
			}

			writeFile(t, dir, "conflict.rego", "package credgate.admission\n\nwarn contains \"fixed\" if false\n")
			if ok, err := w.Reload(t.Context()); !ok || err != nil {
				t.Fatalf("Reload after the fix = %t, %v; want it served", ok, err)
			}
		})
	}
}

// TestWatcherCanaryReplaysRecentInputs: the canary evaluates the inputs the engine saw
// recently, so a revision failing only on a shape of input the samples lack is refused too.
func TestWatcherCanaryReplaysRecentInputs(t *testing.T) {
	const onlyOnRecent = `package credgate.admission

owner := "a" if input.request.name == "ring-only"

owner := "b" if input.request.name == "ring-only"

deny contains {"rule": "owner", "message": owner} if owner == "c"
`
	// An engine that has not seen such an input serves the revision: the samples pass.
	dir := t.TempDir()
	w, _ := newTestWatcher(t, dir)
	writeFile(t, dir, "owner.rego", onlyOnRecent)
	if ok, err := w.Reload(t.Context()); !ok || err != nil {
		t.Fatalf("Reload = %t, %v; want the revision served (no input it fails on)", ok, err)
	}

	dir = t.TempDir()
	w, logs := newTestWatcher(t, dir)
	first := w.Engine.Current().ID()
	in := inputNamed("ring-only")
	if _, err := w.Engine.Evaluate(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	writeFile(t, dir, "owner.rego", onlyOnRecent)
	ok, err := w.Reload(t.Context())
	var ce *CanaryError
	if ok || !errors.As(err, &ce) || ce.Input != "recent input 1 (CREATE Pod team-a/ring-only)" {
		t.Fatalf("Reload = %t, %v; want a canary failure on the recent input", ok, err)
	}
	if w.Engine.Current().ID() != first {
		t.Error("the refused revision is served")
	}
	if !strings.Contains(logs.String(), "eval_conflict_error") {
		t.Errorf("log lacks the evaluation error:\n%s", logs.String())
	}
}

// TestRecentInputsBounded: the engine keeps inputs that evaluated without error, at most one
// per recentInterval, at most maxRecentInputs of them, none larger than maxRecentInputBytes.
func TestRecentInputsBounded(t *testing.T) {
	rev, err := Compile(t.Context(), Builtin())
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(rev)
	if _, err := e.Evaluate(t.Context(), inputNamed("first")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Evaluate(t.Context(), inputNamed("too-soon")); err != nil {
		t.Fatal(err)
	}
	if got := names(e.RecentInputs()); !slices.Equal(got, []string{"first"}) {
		t.Errorf("recent inputs %v, want [first]: one per interval", got)
	}

	var r recentInputs
	now := time.Now()
	for i := range maxRecentInputs + 5 {
		now = now.Add(recentInterval)
		r.offer(inputNamed(fmt.Sprint(i)), now)
	}
	got := names(r.snapshot())
	if len(got) != maxRecentInputs || got[0] != fmt.Sprint(maxRecentInputs+4) || got[maxRecentInputs-1] != "5" {
		t.Errorf("recent inputs %v, want the last %d, newest first", got, maxRecentInputs)
	}
	big := inputNamed(strings.Repeat("x", maxRecentInputBytes))
	r.offer(big, now.Add(recentInterval))
	if names(r.snapshot())[0] == strings.Repeat("x", maxRecentInputBytes) {
		t.Error("an input over maxRecentInputBytes was kept")
	}
	if n := inputSize(big, 1000); n > 2000 {
		t.Errorf("inputSize counted %d past a limit of 1000: it should stop", n)
	}

	// A failed evaluation keeps nothing: its input would fail every future canary.
	src := Builtin()
	src.Modules = maps.Clone(src.Modules)
	src.Modules["user/function.rego"] = conflicting["function"]
	bad, err := Compile(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	failing := NewEngine(bad)
	if _, err := failing.Evaluate(t.Context(), inputNamed("failed")); err == nil {
		t.Fatal("an evaluation of conflicting rules succeeded")
	}
	if got := failing.RecentInputs(); len(got) != 0 {
		t.Errorf("kept %d inputs of failed evaluations", len(got))
	}
}

// inputNamed is a sample input with request.name replaced.
func inputNamed(name string) ast.Value {
	return ast.MustParseTerm(fmt.Sprintf(`{"request": {"operation": "CREATE", "namespace": "team-a", "name": %q, "kind": {"kind": "Pod"}},
		"namespace": {"name": "team-a", "labels": {}}, "pod": {"spec": {"containers": []}}, "credentials": [], "missing": [], "available": [], "targets": []}`, name)).Value
}

func names(values []ast.Value) []string {
	var out []string
	for _, v := range values {
		name := v.(ast.Object).Get(ast.StringTerm("request")).Value.(ast.Object).Get(ast.StringTerm("name")).Value.(ast.String)
		out = append(out, string(name))
	}
	return out
}

// newTestWatcher returns a watcher of dir (empty for now) serving the built-ins, its metrics on
// a registry of their own, and what it logs.
func newTestWatcher(t *testing.T, dir string) (*Watcher, *syncBuffer) {
	t.Helper()
	rev, err := Load(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	log := funcr.New(func(prefix, args string) { logs.add(args) }, funcr.Options{})
	return &Watcher{Dir: dir, Engine: NewEngine(rev), Metrics: m, Log: log}, logs
}

type syncBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (b *syncBuffer) add(s string) {
	b.mu.Lock()
	b.lines = append(b.lines, s)
	b.mu.Unlock()
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Join(b.lines, "\n")
}

func writeFile(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRecentInputsConcurrent: evaluations keep inputs while the watcher reads them (go test
// -race).
func TestRecentInputsConcurrent(t *testing.T) {
	var r recentInputs
	var wg sync.WaitGroup
	start := time.Now()
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				r.offer(inputNamed(fmt.Sprint(g, i)), start.Add(time.Duration(g*200+i)*recentInterval))
				if i%50 == 0 {
					_ = r.snapshot()
				}
			}
		})
	}
	wg.Wait()
	if n := len(r.snapshot()); n != maxRecentInputs {
		t.Errorf("%d inputs kept, want %d", n, maxRecentInputs)
	}
}

// Dry-run requests are not kept for the canary: no object stands behind them, and a tenant
// could otherwise fill the ring with whatever shapes it likes at no cost.
func TestRecentInputsSkipDryRuns(t *testing.T) {
	rev, err := Compile(t.Context(), Builtin())
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(rev)
	dry := ast.MustParseTerm(`{"request": {"operation": "CREATE", "namespace": "team-a", "name": "dry", "dryRun": true, "kind": {"kind": "Pod"}},
		"namespace": {"name": "team-a", "labels": {}}, "pod": {"spec": {"containers": []}}, "credentials": [], "missing": [], "available": [], "targets": []}`).Value
	if _, err := e.Evaluate(t.Context(), dry); err != nil {
		t.Fatal(err)
	}
	if got := e.RecentInputs(); len(got) != 0 {
		t.Errorf("recent inputs %v, want none", names(got))
	}
}

// offer keeps v unless one was kept less than recentInterval ago or v is too large, as the
// engine does after an evaluation.
func (r *recentInputs) offer(v ast.Value, now time.Time) {
	if r.claim(now) {
		r.keep(v)
	}
}
