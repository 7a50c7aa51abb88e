package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/credgate/credgate/bench/internal/benchenv"

	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/credgate/credgate/test/cluster"
)

// serveProcess is the cluster's running credgate serve: its process id and the addresses its
// flags give it.
type serveProcess struct {
	pid             int
	health, metrics string
}

// findServe finds the credgate serve process whose --audit-file is auditPath. Every cluster
// has an audit file of its own (in its work directory), so another cluster's credgate serve on
// the machine — other benchmarks may run beside this one — is never taken for it.
func findServe(auditPath string) (serveProcess, bool) {
	pid, args, ok := benchenv.FindServe("--audit-file=" + auditPath)
	if !ok {
		return serveProcess{}, false
	}
	p := serveProcess{pid: pid}
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--health-probe-bind-address="); ok {
			p.health = v
		}
		if v, ok := strings.CutPrefix(a, "--metrics-bind-address="); ok {
			p.metrics = v
		}
	}
	return p, true
}

// waitServe waits for findServe to find the process.
func waitServe(ctx context.Context, auditPath string) (serveProcess, error) {
	for {
		if p, ok := findServe(auditPath); ok {
			return p, nil
		}
		select {
		case <-ctx.Done():
			return serveProcess{}, fmt.Errorf("no credgate serve process with --audit-file=%s: %w", auditPath, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// memory is what /proc/<pid>/status says of a process's memory, in KiB: the resident set
// (VmRSS), its peak (VmHWM), and the resident set's anonymous part (the Go heap, stacks, the
// runtime's own) and file-backed part (mostly the binary's pages).
type memory struct {
	rss, hwm, anon, file int64
}

// readMemory reads process pid's memory.
func readMemory(pid int) (memory, error) {
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
	if err != nil {
		return memory{}, err
	}
	return parseStatus(data)
}

// parseStatus reads the memory of a /proc/<pid>/status file's contents.
func parseStatus(data []byte) (memory, error) {
	var m memory
	fields := map[string]*int64{"VmRSS": &m.rss, "VmHWM": &m.hwm, "RssAnon": &m.anon, "RssFile": &m.file}
	found := 0
	for sc := bufio.NewScanner(bytes.NewReader(data)); sc.Scan(); {
		k, v, ok := strings.Cut(sc.Text(), ":")
		dst := fields[k]
		if !ok || dst == nil {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return memory{}, fmt.Errorf("/proc status: %s: unexpected value %q", k, v)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return memory{}, fmt.Errorf("/proc status: %s: %w", k, err)
		}
		*dst = n
		found++
	}
	if found != len(fields) {
		return memory{}, errors.New("/proc status: VmRSS, VmHWM, RssAnon or RssFile missing")
	}
	return m, nil
}

// Metrics of credgate serve's /metrics the report reads: the Go runtime's (client_golang's Go
// collector) and credgate's count of admission requests.
const (
	metricHeapInuse  = "go_memstats_heap_inuse_bytes"
	metricHeapObject = "go_memstats_heap_objects"
	metricNextGC     = "go_memstats_next_gc_bytes"
	metricGoroutines = "go_goroutines"
	metricGCs        = "go_gc_duration_seconds_count"
	metricGOGC       = "go_gc_gogc_percent"
	metricMemLimit   = "go_gc_gomemlimit_bytes"
	metricRequests   = "credgate_admission_requests_total"
)

// snapshot is credgate serve's memory at one point of the run.
type snapshot struct {
	label   string
	mem     memory
	metrics map[string]float64
}

// take reads p's memory and metrics.
func take(ctx context.Context, label string, p serveProcess) (snapshot, error) {
	mem, err := readMemory(p.pid)
	if err != nil {
		return snapshot{}, fmt.Errorf("%s: %w", label, err)
	}
	metrics, err := benchenv.Scrape(ctx, p.metrics)
	if err != nil {
		return snapshot{}, fmt.Errorf("%s: %w", label, err)
	}
	return snapshot{label: label, mem: mem, metrics: metrics}, nil
}

// settle waits, idle, at most limit for p's next garbage collection after snapshot last, polling
// its metrics every 2s, and takes a snapshot then: the heap in use is then about the live heap,
// and the runtime returns what it freed to the OS in the background.
func settle(ctx context.Context, last snapshot, p serveProcess, limit time.Duration) (snapshot, error) {
	started := time.Now()
	for {
		m, err := benchenv.Scrape(ctx, p.metrics)
		if err != nil {
			return snapshot{}, err
		}
		waited := time.Since(started).Round(time.Second)
		if m[metricGCs] > last.metrics[metricGCs] {
			return take(ctx, fmt.Sprintf("  the same after its next GC, %s later", waited), p)
		}
		if waited >= limit {
			return take(ctx, fmt.Sprintf("  the same %s later, no GC since", waited), p)
		}
		select {
		case <-ctx.Done():
			return snapshot{}, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// startup is what one start of credgate serve took, each time from just before the cluster
// started the process (zero: not measured).
type startup struct {
	// listening: the first TCP connection to the webhook port; admitted: the first
	// AdmissionReview answered 200, allowed, with a patch, and sent when that request was sent;
	// ready: /readyz answered 200.
	listening, sent, admitted, ready time.Duration
	// others counts the answers before the first admitted one that were not it (another
	// status, or a refusal); first is the first of them.
	others int
	first  string
}

// restart stops the cluster's credgate serve and starts it again with the same flags
// (cluster.StopCredgate, StartCredgate), and measures, polling every few milliseconds, when
// the new process answers /readyz and, with a probe, when it answers an admission.
func restart(ctx context.Context, c *cluster.Cluster, probe *prober) (startup, serveProcess, error) {
	c.StopCredgate()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	started := time.Now()
	done := make(chan error, 1)
	go func() { done <- c.StartCredgate(ctx) }()
	p, err := waitServe(ctx, c.AuditPath)
	if err != nil {
		return startup{}, p, errors.Join(err, <-done)
	}
	var s startup
	var readyErr, probeErr error
	var wg sync.WaitGroup
	wg.Go(func() { s.ready, readyErr = pollReady(ctx, p.health, started) })
	if probe != nil {
		wg.Go(func() { probeErr = probe.first(ctx, started, &s) })
	}
	wg.Wait()
	if err := errors.Join(<-done, readyErr, probeErr); err != nil {
		return s, p, err
	}
	return s, p, nil
}

// pollReady polls health's /readyz every 5ms until it answers 200, and returns the time since
// started.
func pollReady(ctx context.Context, health string, started time.Time) (time.Duration, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+health+"/readyz", nil)
		if err != nil {
			return 0, err
		}
		if res, err := hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return time.Since(started), nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("/readyz of credgate serve: %w", ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// prober sends one AdmissionReview to credgate serve's mutating pod webhook over HTTPS, as the
// API server does, trusting the CA of credgate's webhook configuration.
type prober struct {
	url  string
	ca   *x509.CertPool
	body []byte
}

// newProber returns a prober of the cluster's credgate serve whose review is the training pod
// of namespace ns.
func newProber(ctx context.Context, c *cluster.Cluster, ns string) (*prober, error) {
	ca, err := benchenv.CredgateCA(ctx, c.Client)
	if err != nil {
		return nil, err
	}
	pod := trainingPod(ns)
	raw, err := json.Marshal(pod)
	if err != nil {
		return nil, err
	}
	gvk := metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
	gvr := metav1.GroupVersionResource{Version: "v1", Resource: "pods"}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: "5c0ae3b1-2f0e-4c55-9d3a-6b7e1f2a9c01", Kind: gvk, Resource: gvr, RequestKind: &gvk, RequestResource: &gvr,
			Name: pod.Name, Namespace: ns, Operation: admissionv1.Create,
			UserInfo: authenticationv1.UserInfo{Username: "alice@example.com", Groups: []string{"system:authenticated"}},
			Object:   runtime.RawExtension{Raw: raw}, DryRun: new(true),
		},
	}
	body, err := json.Marshal(review)
	if err != nil {
		return nil, err
	}
	return &prober{url: fmt.Sprintf("https://127.0.0.1:%d/mutate-v1-pod", c.Port), ca: ca, body: body}, nil
}

// first sends the review every 5ms (each as soon as the last is answered or refused a
// connection) until credgate answers 200 with an allowed, patched response, and records in s
// when the port first accepted a connection and when that answer came, since started.
func (p *prober) first(ctx context.Context, started time.Time, s *startup) error {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.ca, ServerName: "localhost", MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var mu sync.Mutex
	trace := &httptrace.ClientTrace{ConnectDone: func(_, _ string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err == nil && s.listening == 0 {
			s.listening = time.Since(started)
		}
	}}
	for {
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), http.MethodPost, p.url, bytes.NewReader(p.body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		sent := time.Since(started)
		res, err := hc.Do(req)
		if err == nil {
			ok, why := admittedWithPatch(res)
			if ok {
				s.sent, s.admitted = sent, time.Since(started)
				return nil
			}
			if s.others++; s.first == "" {
				s.first = why
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no admission answered with a patch (%d other answers, the first: %s): %w", s.others, s.first, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// admittedWithPatch reads a webhook response: whether it is 200 with an allowed, patched
// AdmissionReview, and if not what it was.
func admittedWithPatch(res *http.Response) (bool, string) {
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return false, err.Error()
	}
	if res.StatusCode != http.StatusOK {
		return false, fmt.Sprintf("%s: %.200s", res.Status, data)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &review); err != nil {
		return false, fmt.Sprintf("undecodable review: %v", err)
	}
	switch r := review.Response; {
	case r == nil:
		return false, "a review without a response"
	case !r.Allowed:
		msg := ""
		if r.Result != nil {
			msg = r.Result.Message
		}
		return false, fmt.Sprintf("refused: %.200s", msg)
	case len(r.Patch) == 0:
		return false, "admitted without a patch"
	}
	return true, ""
}
