// Command soak drives credgate through the real control plane for a fixed time and reports
// every outcome: make soak runs it and writes its table to bench/soak.txt.
//
// It starts the control plane of package test/cluster (etcd, kube-apiserver, the Job
// controller, credgate serve, credgate refresher), puts --replicas more replicas of credgate
// serve behind a test/cluster.Service (a TCP proxy to the ready ones, standing in for a
// Kubernetes Service and kube-proxy), points the webhook configurations at it, and lets
// --clients clients create, one after another with --pause between, in turn: a bare Pod
// requesting a Credential (it must be admitted with the credential's variable injected), a Job
// requesting it (admitted; the Job controller then creates its pod through the same webhooks),
// and a Pod requesting an admin-scoped Credential (it must be refused by
// admin-scoped-credential). Anything else is a failure, kept with its cause. Every
// --sample it reads each serving replica's RSS (/proc/<pid>/status), open file descriptors
// (/proc/<pid>/fd) and goroutines (its /metrics), and at the end the API server's own
// admission latency for credgate's pod webhooks.
//
// It fails when any admission failed, so that a soak on demand is a test too; the short fault
// tests of make test are in test/e2e/faults_test.go.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/bench/internal/benchenv"
	"github.com/credgate/credgate/test/cluster"
)

type options struct {
	root, out string
	duration  time.Duration
	clients   int
	replicas  int
	pause     time.Duration
	sample    time.Duration
}

func main() { os.Exit(benchenv.Main("soak", parseFlags, soak)) }

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{}
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: go run ./bench/soak [flags]   (make soak builds what it needs and runs it)

Creates labelled Pods and Jobs, and Pods that must be refused, through a local control plane
with --replicas replicas of credgate serve behind a stand-in Service, for --duration; counts
every outcome, samples the replicas' RSS, file descriptors and goroutines, and reads the API
server's admission latency for credgate's webhooks. Fails if any admission failed.

Needs bin/etcd, bin/kube-apiserver, bin/kube-controller-manager (make control-plane) and
bin/credgate (make build). Run from the repository's root.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.root, "root", ".", "the repository: bin/, manifests/")
	fs.StringVar(&o.out, "o", "bench/soak.txt", `write the table to this file ("-": standard output only)`)
	fs.DurationVar(&o.duration, "duration", 2*time.Minute, "how long the clients create objects")
	fs.IntVar(&o.clients, "clients", 4, "concurrent clients, each creating one object after another")
	fs.IntVar(&o.replicas, "replicas", 2, "replicas of credgate serve behind the Service")
	fs.DurationVar(&o.pause, "pause", 50*time.Millisecond, "each client's pause between two objects")
	fs.DurationVar(&o.sample, "sample", 10*time.Second, "how often the replicas' RSS, file descriptors and goroutines are read")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q (see --help)", fs.Args())
	case o.duration <= 0 || o.duration > 24*time.Hour:
		return o, errors.New("--duration must be more than 0 and at most 24h")
	case o.clients < 1 || o.clients > 256 || o.replicas < 1 || o.replicas > 8:
		return o, errors.New("--clients must be 1 to 256, --replicas 1 to 8")
	case o.pause < 0 || o.sample < time.Second:
		return o, errors.New("--pause must not be negative, --sample at least 1s")
	}
	return o, nil
}

// The kinds of object the clients create, in turn.
const (
	kindPod     = "Pod (admitted, injected)"
	kindJob     = "Job (admitted)"
	kindRefused = "Pod (refused: admin-scoped)"
)

var kinds = []string{kindPod, kindJob, kindRefused}

// tally counts the outcomes by kind, and keeps the failures.
type tally struct {
	mu       sync.Mutex
	ok       map[string]int
	failures []string
}

func (t *tally) record(kind string, err error, at time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err == nil {
		t.ok[kind]++
		return
	}
	if len(t.failures) < 1000 {
		t.failures = append(t.failures, fmt.Sprintf("%8s  %s: %v", at.Round(time.Millisecond), kind, err))
	}
}

// sample is one reading of one replica.
type sample struct {
	rssKiB, fds int
	goroutines  float64
}

func soak(ctx context.Context, o options) error {
	root, err := filepath.Abs(o.root)
	if err != nil {
		return err
	}
	loadBefore := benchenv.LoadAverage()
	fmt.Fprintln(os.Stderr, "== starting the control plane and credgate (package test/cluster)")
	c, err := cluster.Start(ctx, cluster.Options{Root: root, Progress: os.Stderr})
	if err != nil {
		return err
	}
	keep := true
	defer func() {
		c.Stop()
		if keep {
			fmt.Fprintf(os.Stderr, "soak: logs of the control plane and credgate kept in %s\n", c.WorkDir)
		} else {
			c.RemoveWorkDir()
		}
	}()
	_, replicas, stopService, err := c.StartBehindService(ctx, "credgate-soak", o.replicas)
	if err != nil {
		return err
	}
	defer func() { _ = stopService() }()
	ns, err := setUp(ctx, c)
	if err != nil {
		return err
	}
	hooks, err := c.PodCreateWebhooks(ctx)
	if err != nil {
		return err
	}
	before, err := c.WebhookHistograms(ctx, hooks)
	if err != nil {
		return err
	}

	fmt.Fprintf(os.Stderr, "== %d clients for %s, %d replicas behind the Service\n", o.clients, o.duration, o.replicas)
	t := &tally{ok: map[string]int{}}
	samples := make([][]sample, len(replicas))
	start := time.Now()
	loadCtx, stop := context.WithTimeout(ctx, o.duration)
	defer stop()
	var wg sync.WaitGroup
	for i := range o.clients {
		wg.Go(func() {
			for n := 0; loadCtx.Err() == nil; n++ {
				kind := kinds[n%len(kinds)]
				t.record(kind, create(ctx, c, ns, kind, fmt.Sprintf("soak-%d-%d", i, n)), time.Since(start))
				_ = sleep(loadCtx, o.pause)
			}
		})
	}
	wg.Go(func() {
		for loadCtx.Err() == nil {
			for i, r := range replicas {
				samples[i] = append(samples[i], read(ctx, r))
			}
			_ = sleep(loadCtx, o.sample)
		}
	})
	wg.Wait()
	elapsed := time.Since(start)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	for i, r := range replicas {
		samples[i] = append(samples[i], read(ctx, r))
	}
	after, err := c.WebhookHistograms(ctx, hooks)
	if err != nil {
		return err
	}
	keep = len(t.failures) > 0
	err = benchenv.Report("soak", o.out, func(w io.Writer) error {
		return report(w, o, root, loadBefore, elapsed, t, replicas, samples, hooks, before, after)
	})
	if err != nil {
		return err
	}
	if len(t.failures) > 0 {
		return fmt.Errorf("%d admissions did not end as expected (see the report)", len(t.failures))
	}
	return nil
}

// setUp creates the namespace and its two Credentials: wandb, and an admin-scoped AWS one.
func setUp(ctx context.Context, c *cluster.Cluster) (string, error) {
	ns := "soak"
	objs := []client.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "wandb", Namespace: ns}, StringData: map[string]string{"api-key": "soak-key"}},
		&v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "wandb", Namespace: ns},
			Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeWandB, SecretRef: &v1alpha1.SecretReference{Name: "wandb"}}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "aws-admin", Namespace: ns},
			StringData: map[string]string{"aws_access_key_id": "AKIA", "aws_secret_access_key": "soak"}},
		&v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: "aws-admin", Namespace: ns},
			Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeAWS, SecretRef: &v1alpha1.SecretReference{Name: "aws-admin"},
				Access: v1alpha1.Access{Level: v1alpha1.AccessAdmin}}},
	}
	for _, o := range objs {
		if err := c.Client.Create(ctx, o); err != nil {
			return "", fmt.Errorf("create %s: %w", o.GetName(), err)
		}
	}
	return ns, nil
}

// create creates one object of kind and checks its outcome.
func create(ctx context.Context, c *cluster.Cluster, ns, kind, name string) error {
	labels := map[string]string{"credentials.credgate.dev/wandb": "true"}
	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "trainer", Image: "trainer:1"}}, RestartPolicy: corev1.RestartPolicyNever}
	switch kind {
	case kindPod:
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels}, Spec: spec}
		if err := c.Client.Create(ctx, p); err != nil {
			return err
		}
		if !slices.ContainsFunc(p.Spec.Containers[0].Env, func(e corev1.EnvVar) bool { return e.Name == "WANDB_API_KEY" }) {
			return errors.New("admitted without WANDB_API_KEY")
		}
		return nil
	case kindJob:
		j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
			Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: spec}}}
		return c.Client.Create(ctx, j)
	default:
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			Labels: map[string]string{"credentials.credgate.dev/aws-admin": "true"}}, Spec: spec}
		err := c.Client.Create(ctx, p)
		switch {
		case err == nil:
			return errors.New("admitted an admin-scoped credential")
		case strings.Contains(err.Error(), "[admin-scoped-credential]"):
			return nil
		default:
			return err
		}
	}
}

// read samples r's process.
func read(ctx context.Context, r *cluster.Replica) sample {
	s := sample{goroutines: math.NaN()}
	pid := r.Pid()
	if pid == 0 {
		return s
	}
	if f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				s.rssKiB, _ = strconv.Atoi(strings.Fields(v + " 0")[0])
			}
		}
		_ = f.Close()
	}
	if fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
		s.fds = len(fds)
	}
	if m, err := benchenv.Scrape(ctx, r.Metrics); err == nil {
		if g, ok := m["go_goroutines"]; ok {
			s.goroutines = g
		}
	}
	return s
}

func report(w io.Writer, o options, root, loadBefore string, elapsed time.Duration, t *tally, replicas []*cluster.Replica,
	samples [][]sample, hooks []cluster.WebhookID, before, after map[cluster.WebhookID]*cluster.Histogram) error {
	total := len(t.failures)
	for _, n := range t.ok {
		total += n
	}
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("# credgate soak: %d clients for %s, %d replicas of credgate serve behind a stand-in Service", o.clients, o.duration, o.replicas)
	p("#")
	p("# command:  %s", benchenv.Command("soak", "soak"))
	p("# commit:   %s (%s)", benchenv.Commit(root), benchenv.CredgateVersion(root))
	p("# machine:  %s; load average before %s, after %s", benchenv.CPUModel(), loadBefore, benchenv.LoadAverage())
	p("")
	p("%-30s %10s", "outcome", "count")
	for _, k := range kinds {
		p("%-30s %10d", k, t.ok[k])
	}
	p("%-30s %10d", "failed (below)", len(t.failures))
	p("%-30s %10.1f/s over %s", "objects created or refused", float64(total)/elapsed.Seconds(), elapsed.Round(time.Second))
	p("")
	p("API server's admission latency for credgate's pod webhooks (%s), in this run:", cluster.WebhookDurationMetric)
	p("%-34s %8s %10s %10s %10s", "webhook", "calls", "mean", "p50", "p99")
	for _, h := range hooks {
		d := after[h].Minus(*before[h])
		p50, _, _ := d.Quantile(0.5)
		p99, _, _ := d.Quantile(0.99)
		p("%-34s %8.0f %9.1fms %9.1fms %9.1fms", h.Name+" ("+h.Type+")", d.Count(), d.Mean()*1000, p50*1000, p99*1000)
	}
	p("")
	p("Replicas over the run (first sample → last; max):")
	p("%-18s %22s %22s %22s", "replica", "RSS MiB", "open fds", "goroutines")
	for i, r := range replicas {
		ss := samples[i]
		if len(ss) == 0 {
			continue
		}
		first, last := ss[0], ss[len(ss)-1]
		var maxRSS, maxFD int
		maxG := 0.0
		for _, s := range ss {
			maxRSS, maxFD, maxG = max(maxRSS, s.rssKiB), max(maxFD, s.fds), math.Max(maxG, s.goroutines)
		}
		p("%-18s %22s %22s %22s", fmt.Sprintf("port %d", r.Port),
			fmt.Sprintf("%.0f → %.0f; %.0f", float64(first.rssKiB)/1024, float64(last.rssKiB)/1024, float64(maxRSS)/1024),
			fmt.Sprintf("%d → %d; %d", first.fds, last.fds, maxFD),
			fmt.Sprintf("%.0f → %.0f; %.0f", first.goroutines, last.goroutines, maxG))
	}
	if len(t.failures) > 0 {
		p("")
		p("Failures (time since the start, kind, cause):")
		for _, f := range t.failures {
			p("%s", f)
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
