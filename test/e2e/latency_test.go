//go:build e2e

package e2e

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
)

// The load of TestAdmissionLatency: pods created at a steady rate by a few goroutines, as a
// Job controller creates them, every latencyUnlabelledEvery-th one without a credential label
// (it never reaches credgate: the pods of a cluster that do not ask for credentials).
const (
	latencyRate            = 20 // pods per second
	latencyDuration        = 10 * time.Second
	latencyWorkers         = 4
	latencyUnlabelledEvery = 5
)

// webhookDurationMetric is the API server's histogram of each admission webhook call: from
// the request it sends to the response it has applied, so TLS, the network and credgate's
// handling, as every pod creation pays them. Labels: name (the webhook's), type (admit or
// validating), operation, rejected.
const webhookDurationMetric = "apiserver_admission_webhook_admission_duration_seconds"

// resultsEnv names the file TestAdmissionLatency writes its figures to (make bench-e2e:
// bench/e2e.txt); a relative path is relative to the repository.
const resultsEnv = "CREDGATE_E2E_RESULTS"

// webhookID is a webhook as the API server's metrics name it.
type webhookID struct{ name, typ string }

// TestAdmissionLatency measures credgate's admission latency where users feel it: in the API
// server, which times every call to a webhook. Labelled pods are created at latencyRate per
// second for latencyDuration; the histogram of credgate's pod webhooks is read from the API
// server's /metrics before and after, and p50 and p99 of the difference are reported (t.Logf,
// and the file $CREDGATE_E2E_RESULTS). Time is never asserted — it depends on the machine —
// but every labelled pod must have been seen by credgate's mutating pod webhook and stored
// with its credentials, so the figures are of calls that happened and did their work.
func TestAdmissionLatency(t *testing.T) {
	ns := namespace(t)
	credential(t, ns, "wandb", v1alpha1.TypeWandB, map[string]string{"api-key": "k"}, nil)
	credential(t, ns, "hf", v1alpha1.TypeHuggingFace, map[string]string{"token": "t"}, nil)
	// Pods not bound to a node are deleted at once. Deleting the namespace would not delete
	// them: no namespace controller runs here.
	t.Cleanup(func() {
		_ = c.Client.DeleteAllOf(context.Background(), &corev1.Pod{}, client.InNamespace(ns))
	})
	labelled := map[string]string{"app": "latency", "credentials.credgate.dev/wandb": "true", "credentials.credgate.dev/hf": "true"}
	unlabelled := map[string]string{"app": "latency"}
	hooks := podCreateWebhooks(t)

	loadavg := loadAverage()
	before := webhookHistograms(t, hooks)
	total := int(latencyRate * latencyDuration / time.Second)
	// Each pod's create, as the client saw it; an index per pod, so no lock.
	took := make([]time.Duration, total)
	failed := make([]bool, total)
	work := make(chan int, total)
	start := time.Now()
	go func() {
		defer close(work)
		tick := time.NewTicker(time.Second / latencyRate)
		defer tick.Stop()
		for i := range total {
			if i > 0 {
				select {
				case <-tick.C:
				case <-t.Context().Done():
					return
				}
			}
			work <- i // never blocks: a backlog waits here, so the rate offered stays steady
		}
	}()
	var wg sync.WaitGroup
	for range latencyWorkers {
		wg.Go(func() {
			for i := range work {
				labels := labelled
				if i%latencyUnlabelledEvery == latencyUnlabelledEvery-1 {
					labels = unlabelled
				}
				t0 := time.Now()
				// A map of its own: the client decodes the stored pod into it.
				err := c.Client.Create(t.Context(), pod(ns, fmt.Sprintf("p-%04d", i), maps.Clone(labels)))
				took[i] = time.Since(t0)
				if err != nil {
					failed[i] = true
					t.Errorf("create pod %d: %v", i, err)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	after := webhookHistograms(t, hooks)

	var createdLabelled, createdUnlabelled []time.Duration
	for i, d := range took {
		switch {
		case failed[i]:
		case i%latencyUnlabelledEvery == latencyUnlabelledEvery-1:
			createdUnlabelled = append(createdUnlabelled, d)
		default:
			createdLabelled = append(createdLabelled, d)
		}
	}
	checkInjected(t, ns, len(createdLabelled))

	r := latencyReport{
		created: len(createdLabelled) + len(createdUnlabelled), labelled: len(createdLabelled),
		elapsed: elapsed, hooks: hooks, delta: map[webhookID]histogram{},
		labelledCreate: createdLabelled, unlabelledCreate: createdUnlabelled, loadavg: loadavg,
	}
	for _, h := range hooks {
		d := after[h].minus(*before[h])
		r.delta[h] = d
		// Every labelled pod is one call to each of credgate's pod webhooks (more for the
		// mutating one if it were reinvoked; other tests' pods may add some).
		if d.count() < float64(len(createdLabelled)) {
			t.Errorf("%s (%s) was called %v times while %d labelled pods were created", h.name, h.typ, d.count(), len(createdLabelled))
		}
	}
	if dv, err := discovery.NewDiscoveryClientForConfig(c.Config); err == nil {
		if v, err := dv.ServerVersion(); err == nil {
			r.server = v.GitVersion
		}
	}
	lines := r.lines()
	for _, l := range lines {
		t.Log(l)
	}
	if path := os.Getenv(resultsEnv); path != "" {
		if !filepath.IsAbs(path) {
			path = filepath.Join(c.Root, path)
		}
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil { //nolint:gosec // a results file meant to be read
			t.Fatal(err)
		}
		t.Logf("results written to %s", path)
	}
}

// podCreateWebhooks are credgate's webhooks that the API server calls when a pod is created —
// one mutating (type admit in the API server's metrics), one validating — found in the
// webhook configurations installed from manifests/webhook.
func podCreateWebhooks(t *testing.T) []webhookID {
	t.Helper()
	var hooks []webhookID
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	if err := c.Client.Get(t.Context(), client.ObjectKey{Name: "credgate"}, &mwc); err != nil {
		t.Fatal(err)
	}
	for _, w := range mwc.Webhooks {
		if coversPodCreate(w.Rules) {
			hooks = append(hooks, webhookID{w.Name, "admit"})
		}
	}
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Client.Get(t.Context(), client.ObjectKey{Name: "credgate"}, &vwc); err != nil {
		t.Fatal(err)
	}
	for _, w := range vwc.Webhooks {
		if coversPodCreate(w.Rules) {
			hooks = append(hooks, webhookID{w.Name, "validating"})
		}
	}
	if len(hooks) != 2 || hooks[0].typ != "admit" || hooks[1].typ != "validating" {
		t.Fatalf("credgate's webhooks for pod creation: %v, want one mutating and one validating", hooks)
	}
	return hooks
}

// coversPodCreate reports whether rules send the creation of a pod.
func coversPodCreate(rules []admissionregistrationv1.RuleWithOperations) bool {
	return slices.ContainsFunc(rules, func(r admissionregistrationv1.RuleWithOperations) bool {
		return slices.Contains(r.APIGroups, "") && slices.Contains(r.Resources, "pods") &&
			(slices.Contains(r.Operations, admissionregistrationv1.Create) || slices.Contains(r.Operations, admissionregistrationv1.OperationAll))
	})
}

// checkInjected checks that ns holds want labelled pods, each stored with the credentials
// of both its labels (variables from their Secrets) and credgate's annotation.
func checkInjected(t *testing.T, ns string, want int) {
	t.Helper()
	var pods corev1.PodList
	if err := c.Client.List(t.Context(), &pods, client.InNamespace(ns), client.HasLabels{"credentials.credgate.dev/wandb"}); err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != want {
		t.Errorf("%d labelled pods stored, want %d", len(pods.Items), want)
	}
	for _, p := range pods.Items {
		if p.Annotations["credgate.dev/injected"] == "" {
			t.Errorf("pod %s lacks the credgate.dev/injected annotation: %v", p.Name, p.Annotations)
		}
		env := p.Spec.Containers[0].Env
		for name, secret := range map[string]string{"WANDB_API_KEY": "wandb-secret", "HF_TOKEN": "hf-secret"} {
			if !slices.ContainsFunc(env, func(e corev1.EnvVar) bool { return e.Name == name && secretOf(e) == secret }) {
				t.Errorf("pod %s: %s not injected from %s: %v", p.Name, name, secret, envNames(env))
			}
		}
	}
}

// histogram is what the figures need of a Prometheus histogram: the cumulative count of
// observations at or under each bucket's upper bound ("le", +Inf included), and their sum.
type histogram struct {
	buckets map[float64]float64
	sum     float64
}

// count is the number of observations (the +Inf bucket's).
func (h histogram) count() float64 { return h.buckets[math.Inf(1)] }

// mean is the observations' mean, exact (from the sum, not the buckets).
func (h histogram) mean() float64 { return h.sum / h.count() }

// share is the fraction of the observations at or under le, one of h's bounds.
func (h histogram) share(le float64) float64 { return h.buckets[le] / h.count() }

// minus is h less an earlier scrape of the same histogram: what was observed in between.
func (h histogram) minus(earlier histogram) histogram {
	d := histogram{buckets: map[float64]float64{}, sum: h.sum - earlier.sum}
	for le, n := range h.buckets {
		d.buckets[le] = n - earlier.buckets[le]
	}
	return d
}

// bounds are h's finite upper bounds, in order.
func (h histogram) bounds() []float64 {
	var b []float64
	for le := range h.buckets {
		if !math.IsInf(le, 1) {
			b = append(b, le)
		}
	}
	slices.Sort(b)
	return b
}

// quantile estimates the q-quantile of h as Prometheus' histogram_quantile does: it finds the
// bucket holding rank q·count and interpolates linearly within it, the first bucket starting
// at 0. A rank beyond the highest finite bound gives that bound. lower and upper are the
// bucket's bounds: how far the estimate can be trusted. NaN when h has no observations.
func (h histogram) quantile(q float64) (v, lower, upper float64) {
	bounds := h.bounds()
	n := h.count()
	if n == 0 || len(bounds) == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	rank := q * n
	b := sort.Search(len(bounds), func(i int) bool { return h.buckets[bounds[i]] >= rank })
	if b == len(bounds) {
		last := bounds[len(bounds)-1]
		return last, last, math.Inf(1)
	}
	lower, upper, below := 0.0, bounds[b], 0.0
	if b > 0 {
		lower, below = bounds[b-1], h.buckets[bounds[b-1]]
	}
	return lower + (upper-lower)*(rank-below)/(h.buckets[upper]-below), lower, upper
}

// webhookHistograms scrapes the API server's /metrics (as the test's admin) and returns the
// histogram of webhookDurationMetric of each webhook in hooks, summed over its other labels
// (operation, rejected).
func webhookHistograms(t *testing.T, hooks []webhookID) map[webhookID]*histogram {
	t.Helper()
	hc, err := rest.HTTPClientFor(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	res, err := hc.Get(strings.TrimSuffix(c.Config.Host, "/") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics of the API server: %s", res.Status)
	}
	out := map[webhookID]*histogram{}
	for _, h := range hooks {
		out[h] = &histogram{buckets: map[float64]float64{}}
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		series, ok := strings.CutPrefix(line, webhookDurationMetric+"_")
		if !ok {
			continue
		}
		suffix, rest, _ := strings.Cut(series, "{")
		if suffix != "bucket" && suffix != "sum" {
			continue
		}
		labels, value, err := parseSample("{" + rest)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		h, ok := out[webhookID{labels["name"], labels["type"]}]
		if !ok {
			continue
		}
		if suffix == "sum" {
			h.sum += value
			continue
		}
		le, err := strconv.ParseFloat(labels["le"], 64)
		if err != nil {
			t.Fatalf("%s: le: %v", line, err)
		}
		h.buckets[le] += value
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// parseSample parses what follows a metric's name on a line of the Prometheus text format:
// {labels} value [timestamp].
func parseSample(s string) (map[string]string, float64, error) {
	labels := map[string]string{}
	if !strings.HasPrefix(s, "{") {
		return nil, 0, fmt.Errorf("no labels")
	}
	s = s[1:]
	for {
		s = strings.TrimLeft(s, ", ")
		if strings.HasPrefix(s, "}") {
			s = s[1:]
			break
		}
		name, rest, ok := strings.Cut(s, `="`)
		if !ok {
			return nil, 0, fmt.Errorf("bad label at %q", s)
		}
		var val strings.Builder
		i := 0
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
				if rest[i] == 'n' {
					val.WriteByte('\n')
					continue
				}
			}
			val.WriteByte(rest[i])
		}
		if i == len(rest) {
			return nil, 0, fmt.Errorf("unterminated value of label %s", name)
		}
		labels[name], s = val.String(), rest[i+1:]
	}
	f := strings.Fields(s)
	if len(f) == 0 {
		return nil, 0, fmt.Errorf("no value")
	}
	v, err := strconv.ParseFloat(f[0], 64)
	return labels, v, err
}

// latencyReport is what TestAdmissionLatency measured.
type latencyReport struct {
	created, labelled int
	elapsed           time.Duration
	hooks             []webhookID
	delta             map[webhookID]histogram
	// The creates of labelled and unlabelled pods as the test's client timed them.
	labelledCreate, unlabelledCreate []time.Duration
	server                           string // kube-apiserver's version
	loadavg                          string // the machine's load before the run (Linux)
}

// lines is the report as the results file holds it: the conditions, then a table.
func (r latencyReport) lines() []string {
	var bounds []string
	b := r.delta[r.hooks[0]].bounds()
	for _, le := range b {
		bounds = append(bounds, strconv.FormatFloat(le, 'g', -1, 64))
	}
	// The shares are at or under the first two bounds (5ms and 25ms in kube-apiserver 1.36).
	lo, hi := 0.005, 0.025
	if len(b) >= 2 {
		lo, hi = b[0], b[1]
	}
	out := []string{
		"# credgate's admission latency as kube-apiserver measures it: " + webhookDurationMetric + ",",
		"# the time of each webhook call (TLS, network, credgate's handling), over a run of pod creations.",
		"# make bench-e2e regenerates this file (TestAdmissionLatency in test/e2e/latency_test.go).",
		"date:   " + time.Now().UTC().Format(time.RFC3339),
		fmt.Sprintf("nproc:  %d (GOMAXPROCS %d); etcd, kube-apiserver, kube-controller-manager, credgate and the test share them;", runtime.NumCPU(), runtime.GOMAXPROCS(0)),
		"        load average before the run " + cmp.Or(r.loadavg, "unknown") + " (1, 5, 15 min; anything else running skews the figures)",
		"server: kube-apiserver " + cmp.Or(r.server, "(version unknown)") + ", " + runtime.Version() + " for the test",
		fmt.Sprintf("run:    %d pods offered at %d/s for %s by %d goroutines (every %dth without a credential label; the others with 2 credentials);",
			int(latencyRate*latencyDuration/time.Second), latencyRate, latencyDuration, latencyWorkers, latencyUnlabelledEvery),
		fmt.Sprintf("        %d created (%d labelled) in %s: %.1f/s", r.created, r.labelled, r.elapsed.Round(time.Millisecond), float64(r.created)/r.elapsed.Seconds()),
		"buckets: " + strings.Join(bounds, ", ") + " s (the API server's, coarse): p50 and p99 are interpolated",
		"        linearly within the bucket shown (lower,upper] in ms, as histogram_quantile does (the first from 0):",
		"        they place the latency in that bucket, no closer (a p50 near 2.5ms says little more than that most",
		"        calls took under 5ms); p99 rests on the slowest one or two calls. The mean (the histogram's _sum over",
		"        its _count) and the shares at or under the first bounds are exact. The client rows are exact too",
		"        (p50, p99 by nearest rank): each pod's create as the test timed it, webhooks, etcd and the network included.",
		"",
		fmt.Sprintf("%-24s %-10s %6s  %-9s %-7s %-7s %-18s %s", "webhook", "type", "calls", "mean",
			"<="+bound(lo)+"ms", "<="+bound(hi)+"ms", "p50", "p99"),
	}
	for _, h := range r.hooks {
		d := r.delta[h]
		out = append(out, fmt.Sprintf("%-24s %-10s %6.0f  %-9s %-7s %-7s %-18s %s", h.name, h.typ, d.count(), ms(d.mean()),
			percent(d.share(lo)), percent(d.share(hi)), bucketed(d, 0.5), bucketed(d, 0.99)))
	}
	for _, row := range []struct {
		name string
		took []time.Duration
	}{{"pod create, labelled", r.labelledCreate}, {"pod create, unlabelled", r.unlabelledCreate}} {
		out = append(out, fmt.Sprintf("%-24s %-10s %6d  %-9s %-7s %-7s %-18s %s", row.name, "client", len(row.took), ms(mean(row.took).Seconds()),
			percent(shareUnder(row.took, seconds(lo))), percent(shareUnder(row.took, seconds(hi))),
			ms(nearestRank(row.took, 0.5).Seconds()), ms(nearestRank(row.took, 0.99).Seconds())))
	}
	return out
}

// bucketed formats the q-quantile of h with the bucket it was interpolated in.
func bucketed(h histogram, q float64) string {
	v, lower, upper := h.quantile(q)
	switch {
	case math.IsNaN(v):
		return "-"
	case math.IsInf(upper, 1):
		return fmt.Sprintf(">%s (%s,+Inf]", ms(lower), bound(lower))
	}
	return fmt.Sprintf("%s (%s,%sms]", ms(v), bound(lower), bound(upper))
}

// ms formats seconds as milliseconds.
func ms(s float64) string { return fmt.Sprintf("%.2fms", s*1000) }

// bound formats a bucket's bound, in seconds, as milliseconds without a unit.
func bound(s float64) string { return strconv.FormatFloat(s*1000, 'g', -1, 64) }

// seconds is s seconds as a duration.
func seconds(s float64) time.Duration { return time.Duration(math.Round(s * float64(time.Second))) }

// percent formats a share as a percentage.
func percent(f float64) string {
	if math.IsNaN(f) {
		return "-"
	}
	return strconv.FormatFloat(f*100, 'f', 1, 64) + "%"
}

// mean is the mean of ds.
func mean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(max(1, len(ds)))
}

// shareUnder is the fraction of ds at or under d.
func shareUnder(ds []time.Duration, d time.Duration) float64 {
	n := 0
	for _, x := range ds {
		if x <= d {
			n++
		}
	}
	return float64(n) / float64(len(ds))
}

// nearestRank is the q-quantile of ds: the smallest value at or above a share q of them.
func nearestRank(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(ds))
	return s[max(0, int(math.Ceil(q*float64(len(s))))-1)]
}

// loadAverage is the machine's load average over 1, 5 and 15 minutes, "" where there is no
// /proc/loadavg.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], " ")
	}
	return ""
}

// TestHistogramQuantile checks the interpolation against histogram_quantile's.
func TestHistogramQuantile(t *testing.T) {
	inf := math.Inf(1)
	// 10 under 5ms, 20 more under 25ms, 10 more under 100ms: 40 in all.
	h := histogram{buckets: map[float64]float64{0.005: 10, 0.025: 30, 0.1: 40, 0.5: 40, inf: 40}, sum: 1.2}
	for _, tc := range []struct{ q, want, lower, upper float64 }{
		{0.125, 0.0025, 0, 0.005},    // rank 5 of the first 10: halfway from 0 to 5ms
		{0.5, 0.015, 0.005, 0.025},   // rank 20: 10 into the 20 of (5ms, 25ms]
		{0.99, 0.097, 0.025, 0.1},    // rank 39.6: 9.6 into the 10 of (25ms, 100ms]
		{1, 0.1, 0.025, 0.1},         // the last observation: the bucket's top
		{0.25, 0.005, 0, 0.005},      // rank 10: the first bucket's top exactly
		{0.75, 0.025, 0.005, 0.025},  // rank 30: the second's top exactly
		{0.26, 0.0054, 0.005, 0.025}, // rank 10.4: 0.4 of 20 into the second
	} {
		v, lower, upper := h.quantile(tc.q)
		if math.Abs(v-tc.want) > 1e-9 || lower != tc.lower || upper != tc.upper {
			t.Errorf("quantile(%v) = %v in [%v,%v], want %v in [%v,%v]", tc.q, v, lower, upper, tc.want, tc.lower, tc.upper)
		}
	}
	beyond := histogram{buckets: map[float64]float64{0.005: 1, 0.025: 1, inf: 2}}
	if v, lower, upper := beyond.quantile(0.99); v != 0.025 || lower != 0.025 || !math.IsInf(upper, 1) {
		t.Errorf("a rank in the +Inf bucket: %v in [%v,%v], want the highest finite bound", v, lower, upper)
	}
	if v, _, _ := (histogram{buckets: map[float64]float64{0.005: 0, inf: 0}}).quantile(0.5); !math.IsNaN(v) {
		t.Errorf("no observations: %v, want NaN", v)
	}
	if d := h.minus(histogram{buckets: map[float64]float64{0.005: 4, 0.025: 4, 0.1: 4, 0.5: 4, inf: 4}, sum: 0.3}); d.count() != 36 || d.buckets[0.005] != 6 ||
		math.Abs(d.mean()-0.025) > 1e-9 {
		t.Errorf("minus: %+v, mean %v", d, d.mean())
	}
	if got := h.share(0.025); got != 0.75 {
		t.Errorf("share at or under 25ms: %v, want 0.75", got)
	}
}
