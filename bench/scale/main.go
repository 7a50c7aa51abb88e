// Command scale measures credgate serve's memory and start-up with many Credentials: make
// bench-scale runs it and writes its table to bench/scale.txt.
//
// It starts the control plane of package test/cluster, with credgate serve as its own process
// behind its webhook configurations, and creates through the API server --namespaces
// namespaces, each with the ten Credentials of tenantCredentials and their Secrets (the shapes
// of examples/credentials.yaml: env from Secrets, static AWS keys with a region and an IAM
// document, files, an image-pull secret, a database). Then:
//
//  1. credgate serve is restarted with them all present (test/cluster's StopCredgate and
//     StartCredgate: the same flags) and its memory read once /readyz says its informers have
//     synced, before any admission, and again after its next garbage collection (idle);
//  2. every Credential is used once: each namespace's training pod, requesting its ten
//     Credentials, is created with dry-run — the API server calls credgate's mutating and
//     validating webhooks and stores nothing — and each must come back admitted and patched
//     (credgate.dev/injected naming all ten); memory is read at once and after the next
//     garbage collection;
//  3. credgate serve is restarted again and timed, from just before the process starts, to its
//     first admission answered 200 with a patch (an AdmissionReview sent straight to its
//     webhook port over HTTPS every 5ms, as the API server would send it) and to /readyz.
//
// Memory is the process's VmRSS and VmHWM (/proc/<pid>/status; the process is found in /proc by
// its --audit-file, which is the cluster's own), with the Go heap from credgate's own /metrics,
// read as soon as each step is done and again after credgate serve's next garbage collection
// (the Go runtime forces one every 2 minutes at the latest), when the heap in use and half the GC
// goal come close to the live heap. credgate serve serves no pprof, so the Credentials' share is
// the difference of those heaps, checked by decoding the same Credentials in this process.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/credgate/credgate/bench/internal/benchenv"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/internal/app"
	"github.com/credgate/credgate/test/cluster"
)

// options are the command's flags.
type options struct {
	root, out  string
	namespaces int
	workers    int
	qps        float64
	burst      int
	idle       time.Duration
}

func main() { os.Exit(benchenv.Main("scale", parseFlags, benchmark)) }

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{}
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: go run ./bench/scale [flags]   (make bench-scale builds what it needs and runs it)

Measures credgate serve's memory (VmRSS, VmHWM, Go heap) with 10 Credentials in each of
--namespaces namespaces, before any admission and after every Credential has been used once
(dry-run pods through the API server), and its start-up with them all present: the time to
its first admission answered with a patch and to /readyz. Fails if a pod is not admitted and
patched.

Needs bin/etcd, bin/kube-apiserver, bin/kube-controller-manager (make control-plane) and
bin/credgate (make build). Run from the repository's root.

Flags:
`)
		fs.PrintDefaults()
	}
	fs.StringVar(&o.root, "root", ".", "the repository: bin/, manifests/")
	fs.StringVar(&o.out, "o", "bench/scale.txt", `write the table to this file ("-": standard output only)`)
	fs.IntVar(&o.namespaces, "namespaces", 1000, "namespaces, each with 10 Credentials (and their Secrets) and one training pod")
	fs.IntVar(&o.workers, "workers", 16, "concurrent requests while creating the objects and admitting the pods")
	fs.Float64Var(&o.qps, "qps", 500, "this program's client's QPS towards the API server")
	fs.IntVar(&o.burst, "burst", 1000, "this program's client's burst")
	fs.DurationVar(&o.idle, "idle", 150*time.Second, "how long to wait, idle, for credgate serve's next garbage collection before reading its\n"+
		"memory again, after its restart and after the admissions (the Go runtime forces one every 2 minutes)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected arguments %q (see --help)", fs.Args())
	case o.namespaces < 1 || o.workers < 1:
		return o, errors.New("--namespaces and --workers must be at least 1")
	case o.qps <= 0 || o.burst < 1 || o.idle < 0:
		return o, errors.New("--qps and --burst must be positive, --idle not negative")
	}
	return o, nil
}

// results are what the report says.
type results struct {
	o                     options
	started               time.Time
	took                  time.Duration
	loadBefore, loadAfter string
	clusterStart          time.Duration
	create, admit         time.Duration
	objects               int
	decoded               decoded
	injected              injected
	warnings              string
	restart1, restart2    startup
	// Memory at each step, in the order of the report's rows.
	empty, emptySettled, watched     snapshot
	ready, idle, used, settled, last snapshot
}

// benchmark runs the steps of the package comment.
func benchmark(ctx context.Context, o options) error {
	res := &results{o: o, started: time.Now(), loadBefore: benchenv.LoadAverage()}
	root, err := filepath.Abs(o.root)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "== starting the control plane and credgate serve (package test/cluster)")
	c, err := cluster.Start(ctx, cluster.Options{Root: root, Progress: os.Stderr})
	if err != nil {
		return err
	}
	res.clusterStart = time.Since(res.started)
	keep := true
	defer func() {
		c.Stop()
		if keep {
			fmt.Fprintf(os.Stderr, "scale: logs of the control plane and credgate kept in %s\n", c.WorkDir)
		} else {
			c.RemoveWorkDir()
		}
	}()
	// A client of its own: faster than the cluster's, counting the warnings of admissions.
	cfg := rest.CopyConfig(c.Config)
	cfg.QPS, cfg.Burst = float32(o.qps), o.burst
	warned := &warnings{}
	cfg.WarningHandlerWithContext = warned
	scheme, err := app.NewScheme()
	if err != nil {
		return err
	}
	cl, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}

	p, err := waitServe(ctx, c.AuditPath)
	if err != nil {
		return err
	}
	if res.empty, err = take(ctx, "started, no Credentials yet", p); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "== waiting for credgate serve's next garbage collection (at most --idle)")
	if res.emptySettled, err = settle(ctx, res.empty, p, o.idle); err != nil {
		return err
	}

	n := o.namespaces * len(credentialNames)
	fmt.Fprintf(os.Stderr, "== creating %d namespaces, each with %d Credentials and their Secrets (%d workers)\n",
		o.namespaces, len(credentialNames), o.workers)
	t := time.Now()
	if err := createTenants(ctx, cl, o.namespaces, o.workers); err != nil {
		return err
	}
	res.create, res.objects = time.Since(t), o.namespaces*(1+2*len(credentialNames))
	// The same process has had them by watch; a few seconds let the last events arrive.
	time.Sleep(5 * time.Second)
	if res.watched, err = take(ctx, fmt.Sprintf("same process, the %d come by watch", n), p); err != nil {
		return err
	}
	if res.decoded, err = measureDecoded(ctx, cl); err != nil {
		return err
	}
	if res.decoded.count != n {
		return fmt.Errorf("listed %d Credentials, created %d", res.decoded.count, n)
	}

	fmt.Fprintf(os.Stderr, "== restarting credgate serve with %d Credentials present\n", n)
	if res.restart1, p, err = restart(ctx, c, nil); err != nil {
		return err
	}
	if res.ready, err = take(ctx, "restarted: /readyz OK, no admission yet", p); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "== waiting for credgate serve's next garbage collection (at most --idle)")
	if res.idle, err = settle(ctx, res.ready, p, o.idle); err != nil {
		return err
	}

	fmt.Fprintf(os.Stderr, "== admitting %d training pods with dry-run, %d Credentials each\n", o.namespaces, len(credentialNames))
	t = time.Now()
	if res.injected, err = admitAll(ctx, cl, o.namespaces, o.workers); err != nil {
		return err
	}
	res.admit, res.warnings = time.Since(t), warned.String()
	if res.used, err = take(ctx, fmt.Sprintf("after %d admissions: every Credential used once", o.namespaces), p); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "== waiting for credgate serve's next garbage collection (at most --idle)")
	if res.settled, err = settle(ctx, res.used, p, o.idle); err != nil {
		return err
	}

	fmt.Fprintln(os.Stderr, "== restarting credgate serve again: time to its first admission and to /readyz")
	probe, err := newProber(ctx, c, namespaceName(o.namespaces-1))
	if err != nil {
		return err
	}
	if res.restart2, p, err = restart(ctx, c, probe); err != nil {
		return err
	}
	if res.last, err = take(ctx, "restarted again: first admission answered", p); err != nil {
		return err
	}
	res.took, res.loadAfter = time.Since(res.started), benchenv.LoadAverage()

	keep = false
	out := o.out
	if out != "-" && !filepath.IsAbs(out) {
		out = filepath.Join(root, out)
	}
	return benchenv.Report("scale", out, func(w io.Writer) error { return writeReport(w, res) })
}
