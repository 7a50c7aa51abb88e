// Command peer measures credgate beside an OPA server that only decides, side by side, on
// the same machine: make bench-peer runs it and writes its table to bench/peer.txt.
//
// credgate is the real credgate serve process, started with the control plane of package
// test/cluster, behind its webhook configurations, with the samples' Credentials created in
// the API server; the load hits its webhook port directly, at /mutate-v1-pod (the whole
// handler: decide, inject, patch) and /validate-v1-pod (decide only). OPA is `opa run
// --server` (bin/opa-<version>, built from source at the version of the OPA library credgate
// embeds) serving credgate's built-in rules — the repository's policies/*.rego themselves —
// and an adapter module binding their deny and warn sets, the union credgate's engine
// computes. Each request to OPA carries the very input document credgate evaluated for the
// same sample, computed by credgate's own review package: OPA decides on exactly what credgate
// decides on, and does nothing else. OPA evaluates every rule on every request; credgate serve
// runs as it ships, keeping between admissions whatever it keeps (the samples repeat, as a
// Job's pods do; --credgate-flag passes it flags).
//
// Before any load, every sample is checked: OPA's violations (rule, credential, message)
// equal what credgate's policies found, and credgate serve's responses equal the decision
// credgate makes in process; the command fails if one does not. Under load every response is
// checked too (HTTP 200, the sample's decision), and any error fails the command.
//
// Both servers speak TLS on 127.0.0.1. The load is one closed-loop generator — the same code
// for both: each client a keep-alive connection of its own (HTTP/2, as the API server calls
// webhooks) — run at each client count in interleaved rounds, then an open-loop run of
// credgate's mutating webhook at half the rate it sustained with the most clients.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/credgate/credgate/bench/internal/benchenv"

	"github.com/credgate/credgate/policies"
)

// options are the command's flags.
type options struct {
	root, opa, out string
	clients        []int
	rounds         int
	warm, duration time.Duration
	openDuration   time.Duration
	openConns      int
	openRate       float64
	http1          bool
	withoutOwner   bool
	parityOnly     bool
	// credgateFlags are more flags of credgate serve.
	credgateFlags stringList
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, " ") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func main() { os.Exit(benchenv.Main("peer", parseFlags, benchmark)) }

func parseFlags(args []string, stderr io.Writer) (options, error) {
	o := options{}
	fs := flag.NewFlagSet("peer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: go run ./bench/peer [flags]   (make bench-peer builds what it needs and runs it)

Measures credgate serve beside an OPA server that only decides, over TLS on 127.0.0.1: the
same samples, OPA handed the very policy input document credgate evaluates, one closed-loop
load generator for both in interleaved rounds, then an open-loop run of credgate at half its
saturated rate. First checks, for every sample, that OPA finds exactly the violations credgate
finds and that credgate serve answers as credgate decides in process; fails if not, or if any
response under load is not the sample's decision.

Needs bin/etcd, bin/kube-apiserver, bin/kube-controller-manager (make control-plane),
bin/credgate (make build) and the OPA binary (--opa). Run from the repository's root.

Flags:
`)
		fs.PrintDefaults()
	}
	clients := fs.String("clients", "1,4,16", "concurrent closed-loop clients, a comma-separated list; the largest sets the open-loop rate")
	fs.StringVar(&o.root, "root", ".", "the repository: policies/, bin/, manifests/, bench/peer/testdata/, webhook/testdata/")
	fs.StringVar(&o.opa, "opa", "bin/opa-"+libraryVersion(), "the OPA binary, built at the version of the OPA library credgate embeds")
	fs.StringVar(&o.out, "o", "bench/peer.txt", `write the table to this file ("-": standard output only)`)
	fs.IntVar(&o.rounds, "rounds", 3, "measured rounds: each runs every target at every client count, targets interleaved")
	fs.DurationVar(&o.warm, "warmup", time.Second, "unmeasured load before each measured run (and twice that per target before the first round)")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "length of each measured closed-loop run")
	fs.DurationVar(&o.openDuration, "open-duration", 10*time.Second, "length of the measured open-loop run")
	fs.IntVar(&o.openConns, "open-conns", 64, "connections the open-loop run may use at once")
	fs.Float64Var(&o.openRate, "open-rate", 0, "the open-loop rate, requests a second (0: half of credgate mutating's median rate with the most clients)")
	fs.BoolVar(&o.http1, "http1", false, "speak HTTP/1.1 instead of HTTP/2 (one keep-alive connection per client either way)")
	fs.BoolVar(&o.withoutOwner, "without-owner", false, "send the pods without their ownerReferences, as if created directly rather than by a Job:\n"+
		"credgate's audit record of a warned or refused pod then reads no owner from the API server")
	fs.Var(&o.credgateFlags, "credgate-flag", "a flag for credgate serve besides those package test/cluster gives it, e.g.\n"+
		"--credgate-flag=--verbosity=1 (repeatable)")
	fs.BoolVar(&o.parityOnly, "parity-only", false, "start both servers, check parity on every sample and stop: no load, no table")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q (see --help)", fs.Args())
	}
	for f := range strings.SplitSeq(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return o, fmt.Errorf("--clients: %q is not a positive number", f)
		}
		o.clients = append(o.clients, n)
	}
	switch {
	case o.rounds < 1:
		return o, errors.New("--rounds must be at least 1")
	case o.duration <= 0 || o.openDuration <= 0 || o.warm < 0:
		return o, errors.New("--duration and --open-duration must be positive, --warmup not negative")
	case o.openConns < 1:
		return o, errors.New("--open-conns must be at least 1")
	case o.openRate < 0:
		return o, errors.New("--open-rate must not be negative")
	}
	return o, nil
}

// Target names, as the table shows them.
const (
	credgateMutating   = "credgate mutating"
	credgateValidating = "credgate validating"
	opaDeciding        = "OPA deciding"
)

// results are what the report says.
type results struct {
	o       options
	opa     string // OPA's version
	started time.Time
	took    time.Duration
	targets []*target
	parity  []parityLine
	// runs[target][clients] are the measured runs, one a round.
	runs     map[string]map[int][]*run
	open     *run
	openRate float64
	// commit is the repository's commit and load the 1-minute load average, both read before
	// the control plane started; cpu is where the machine's CPU time went during the load.
	commit, load string
	cpu          *usage
}

// parityLine is what one sample was found to be, alike on both sides.
type parityLine struct {
	Sample, Decision string
}

// benchmark starts the servers, checks parity and measures; see the package comment.
func benchmark(ctx context.Context, o options) error {
	started := time.Now()
	files, err := policyFiles(o.root)
	if err != nil {
		return err
	}
	rev, err := policies.Load(ctx, "")
	if err != nil {
		return err
	}
	adapter, err := adapterModule(rev)
	if err != nil {
		return err
	}
	testdata := filepath.Join(o.root, "bench", "peer", "testdata")
	creds, err := readCredentials(testdata)
	if err != nil {
		return err
	}
	if err := checkSamples(creds); err != nil {
		return err
	}
	base, err := os.ReadFile(filepath.Join(o.root, trainingPod))
	if err != nil {
		return err
	}
	if _, err := opaVersion(ctx, o.opa); err != nil {
		return err
	}
	load, head := benchenv.LoadAverage(), benchenv.Commit(o.root)
	// On failure the logs stay: the cluster's work directory, and work (OPA's log and certs).
	keep := true
	work, err := os.MkdirTemp("", "credgate-peer-")
	if err != nil {
		return err
	}
	defer func() {
		if keep {
			fmt.Fprintf(os.Stderr, "peer: OPA's log kept in %s\n", work)
		} else {
			_ = os.RemoveAll(work)
		}
	}()
	adapterPath := filepath.Join(work, "peer.rego")
	if err := os.WriteFile(adapterPath, []byte(adapter), 0o600); err != nil {
		return err
	}

	c, err := startCluster(ctx, o.root, o.credgateFlags)
	if err != nil {
		return err
	}
	defer func() {
		c.Stop()
		if keep {
			fmt.Fprintf(os.Stderr, "peer: logs of the control plane and credgate kept in %s\n", c.WorkDir)
		} else {
			c.RemoveWorkDir()
		}
	}()
	job, err := ownerJob(base)
	if err != nil {
		return err
	}
	if o.withoutOwner {
		job = ""
	}
	stored, nsLabels, err := createObjects(ctx, c.Client, job, creds)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "== deciding the samples in process (credgate's review package)")
	ds, err := decideSamples(ctx, newDecider(rev, stored, nsLabels), base, o.withoutOwner)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "== starting OPA "+o.opa)
	opa, err := startOPA(ctx, o.opa, work, append(files, adapterPath))
	if err != nil {
		return err
	}
	defer opa.stop()
	ca, err := benchenv.CredgateCA(ctx, c.Client)
	if err != nil {
		return err
	}
	credgateURL := fmt.Sprintf("https://127.0.0.1:%d", c.Port)

	fmt.Fprintln(os.Stderr, "== parity: OPA's violations and credgate serve's responses, sample by sample")
	mut := &target{Name: credgateMutating, URL: credgateURL + "/mutate-v1-pod", CA: ca, Pid: credgatePid(c.Port)}
	val := &target{Name: credgateValidating, URL: credgateURL + "/validate-v1-pod", CA: ca, Pid: mut.Pid}
	dec := &target{Name: opaDeciding, URL: opa.URL + opaPath, CA: opa.CA, Pid: opa.pid()}
	parity, err := checkParity(ctx, ds, mut, val, dec, o.http1)
	if err != nil {
		return err
	}
	for _, p := range parity {
		fmt.Fprintf(os.Stderr, "   %-15s %s\n", p.Sample, p.Decision)
	}
	if o.parityOnly {
		keep = false
		return nil
	}

	res := &results{o: o, opa: opa.Version, started: started, targets: []*target{mut, val, dec}, parity: parity,
		runs: map[string]map[int][]*run{}, load: load, commit: head,
		cpu: startUsage(mut.Pid, dec.Pid)}
	if err := measure(ctx, res); err != nil {
		return err
	}
	res.cpu.stop()
	res.took = time.Since(started)
	if err := checkErrors(res); err != nil {
		_ = writeReport(os.Stderr, res)
		return err
	}
	keep = false
	return benchenv.Report("peer", o.out, func(w io.Writer) error { return writeReport(w, res) })
}

// measure runs the load: a warm-up of every target, the interleaved rounds, the open loop.
func measure(ctx context.Context, res *results) error {
	o := res.o
	most := slices.Max(o.clients)
	fmt.Fprintf(os.Stderr, "== warm-up: every target, %d clients, %s\n", most, 2*o.warm)
	for _, t := range res.targets {
		if r := closedLoop(ctx, t, most, o.warm, o.warm, o.http1); r.Errors > 0 {
			return fmt.Errorf("warm-up: %d errors, the first: %s", r.Errors, r.FirstError)
		}
	}
	for round := range o.rounds {
		// Targets interleaved, their order reversed every other round.
		order := slices.Clone(res.targets)
		if round%2 == 1 {
			slices.Reverse(order)
		}
		for _, n := range o.clients {
			for _, t := range order {
				if err := ctx.Err(); err != nil {
					return err
				}
				u := startUsage(res.cpu.credgatePid, res.cpu.opaPid)
				r := closedLoop(ctx, t, n, o.warm, o.duration, o.http1)
				r.Others = u.others()
				if res.runs[t.Name] == nil {
					res.runs[t.Name] = map[int][]*run{}
				}
				res.runs[t.Name][n] = append(res.runs[t.Name][n], r)
				fmt.Fprintf(os.Stderr, "   round %d  %-20s %3d clients  %7.0f req/s  p50 %6.2f ms  p99 %6.2f ms  others' CPU %3.0f%%  errors %d\n",
					round+1, t.Name, n, r.rate(), ms(percentile(r.Latencies, 0.5)), ms(percentile(r.Latencies, 0.99)), 100*r.Others, r.Errors)
			}
		}
	}
	rates := make([]float64, 0, o.rounds)
	for _, r := range res.runs[credgateMutating][most] {
		rates = append(rates, r.rate())
	}
	res.openRate = median(rates) / 2
	if o.openRate > 0 {
		res.openRate = o.openRate
	}
	fmt.Fprintf(os.Stderr, "== open loop: %s at %.0f req/s for %s\n", credgateMutating, res.openRate, o.openDuration)
	u := startUsage(res.cpu.credgatePid, res.cpu.opaPid)
	res.open = openLoop(ctx, res.targets[0], res.openRate, o.openConns, o.warm, o.openDuration, o.http1)
	res.open.Others = u.others()
	return ctx.Err()
}

// checkErrors fails if any response under load was not the sample's decision.
func checkErrors(res *results) error {
	var n int
	var first string
	all := []*run{res.open}
	for _, byClients := range res.runs {
		for _, rs := range byClients {
			all = append(all, rs...)
		}
	}
	for _, r := range all {
		n += r.Errors
		if first == "" {
			first = r.FirstError
		}
	}
	if n > 0 {
		return fmt.Errorf("%d requests under load failed or got another decision than the sample's; the first: %s", n, first)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
