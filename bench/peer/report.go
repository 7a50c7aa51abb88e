package main

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/credgate/credgate/bench/internal/benchenv"
)

// writeReport writes the human-readable table of res: how it was made, on what, what each
// target does, the closed-loop figures (medians over the rounds), the ratios, the open loop,
// and what parity found.
func writeReport(w io.Writer, res *results) error {
	o := res.o
	b := &bytes.Buffer{}
	p := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	proto := "HTTP/2"
	if o.http1 {
		proto = "HTTP/1.1"
	}
	cmd := benchenv.Command("peer", "bench-peer")
	p("# credgate beside an OPA server that only decides (make bench-peer; bench/peer/main.go says how)")
	p("command:  %s", cmd)
	p("date:     %s (took %s)", res.started.UTC().Format(time.RFC3339), res.took.Round(time.Second))
	p("commit:   %s", res.commit)
	p("machine:  %d CPUs (nproc), %s, %s/%s: shared by the load generator, OPA and credgate serve, and by the", runtime.NumCPU(), benchenv.CPUModel(), runtime.GOOS, runtime.GOARCH)
	p("          control plane credgate runs in (etcd, kube-apiserver, kube-controller-manager, credgate refresher), and")
	p("          by whatever else runs (load average %s before the run; where the CPU time went is at the end)", res.load)
	p("go:       %s", runtime.Version())
	p("OPA:      %s (%s), built from source by bench/peer/opa with CGO off; credgate embeds the same OPA library", res.opa, o.opa)
	p("credgate: %s", benchenv.CredgateVersion(o.root))
	flags := "its defaults otherwise"
	if len(o.credgateFlags) > 0 {
		flags = "and " + o.credgateFlags.String()
	}
	p("          serve as package test/cluster starts it (self-managed certificates, audit file, --kubeconfig), %s;", flags)
	p("          built-in policies at their default enforcement")
	p("")
	p("targets (each request: TLS on 127.0.0.1, %s, one keep-alive connection per client)", proto)
	for _, t := range res.targets {
		path := t.URL
		if u, err := url.Parse(t.URL); err == nil {
			path = u.Path
		}
		p("  %-20s POST %s, %d bytes on average: %s", t.Name, path, t.bodyBytes(), targetText[t.Name])
	}
	p("samples:  %s", mixText())
	if o.withoutOwner {
		p("          pods sent without their ownerReferences (--without-owner), as if created directly")
	} else {
		p("          pods as the Job controller creates them, owned by a Job that exists (suspended) in the cluster")
	}
	p("load:     closed loop, each client sending its next request when the last is answered; %d rounds, each every target at", o.rounds)
	p("          every client count for %s after %s of warm-up, targets interleaved (order reversed every other round);", o.duration, o.warm)
	p("          figures are medians over the rounds, req/s with its range; server CPU is the server process's CPU time per")
	p("          request answered, load CPU the load generator's (this process: TLS, HTTP/2, reading and checking responses),")
	p("          others the share of the machine's CPU time the rest used meanwhile (the control plane, anything else running)")
	p("")
	p("%-20s %7s  %-18s %8s %8s %11s %11s %7s %7s", "closed loop", "clients", "req/s (min-max)", "p50 ms", "p99 ms", "server CPU", "load CPU", "others", "errors")
	for _, n := range o.clients {
		for _, t := range res.targets {
			runs := res.runs[t.Name][n]
			rates := collect(runs, (*run).rate)
			p("%-20s %7d  %-18s %8.2f %8.2f %11s %8.2f ms %6.0f%% %7d", t.Name, n,
				fmt.Sprintf("%.0f (%.0f-%.0f)", median(rates), slices.Min(rates), slices.Max(rates)),
				median(collect(runs, func(r *run) float64 { return ms(percentile(r.Latencies, 0.5)) })),
				median(collect(runs, func(r *run) float64 { return ms(percentile(r.Latencies, 0.99)) })),
				cpuText(median(collect(runs, func(r *run) float64 { return ms(r.cpuPerRequest()) }))),
				median(collect(runs, func(r *run) float64 { return ms(r.generatorPerRequest()) })),
				median(collect(runs, func(r *run) float64 { return 100 * r.Others })),
				sum(collect(runs, func(r *run) float64 { return float64(r.Errors) })))
		}
	}
	p("")
	p("p50/p99 ms by sample (medians):")
	header := fmt.Sprintf("  %-20s %7s", "", "clients")
	for _, sm := range samples {
		header += fmt.Sprintf(" %15s", sm.Name)
	}
	p("%s", header)
	for _, n := range slices.Compact([]int{slices.Min(o.clients), slices.Max(o.clients)}) {
		for _, t := range res.targets {
			line := fmt.Sprintf("  %-20s %7d", t.Name, n)
			for _, sm := range samples {
				q := func(q float64) float64 {
					return median(collect(res.runs[t.Name][n], func(r *run) float64 { return ms(percentile(r.BySample[sm.Name], q)) }))
				}
				line += fmt.Sprintf(" %15s", fmt.Sprintf("%.2f/%.2f", q(0.5), q(0.99)))
			}
			p("%s", line)
		}
	}
	p("")
	p("credgate mutating / OPA deciding (medians):")
	for _, n := range o.clients {
		m, d := res.runs[credgateMutating][n], res.runs[opaDeciding][n]
		rate := func(rs []*run) float64 { return median(collect(rs, (*run).rate)) }
		lat := func(rs []*run, q float64) float64 {
			return median(collect(rs, func(r *run) float64 { return ms(percentile(r.Latencies, q)) }))
		}
		cpu := func(rs []*run) float64 {
			return median(collect(rs, func(r *run) float64 { return ms(r.cpuPerRequest()) }))
		}
		p("  %2d clients: req/s %.2fx, p50 %.2fx, p99 %.2fx, server CPU per request %s", n,
			rate(m)/rate(d), lat(m, 0.5)/lat(d, 0.5), lat(m, 0.99)/lat(d, 0.99), ratio(cpu(m), cpu(d)))
	}
	p("")
	if r := res.open; r != nil {
		most := slices.Max(o.clients)
		rate := fmt.Sprintf("half its median %d-client rate", most)
		if o.openRate > 0 {
			rate = "as --open-rate says"
		}
		p("open loop: %s at %.0f req/s, %s: requests due evenly spaced for %s (after %s of",
			credgateMutating, res.openRate, rate, o.openDuration, o.warm)
		p("           warm-up), sent over up to %d connections; each latency from when its request was due", o.openConns)
		goal := "met"
		if percentile(r.Latencies, 0.99) > 5*time.Millisecond {
			goal = "not met"
		}
		p("  %d requests (%.0f req/s): p50 %.2f ms, p99 %.2f ms (goal p99 <= 5 ms: %s), max %.2f ms", r.Requests, r.rate(),
			ms(percentile(r.Latencies, 0.5)), ms(percentile(r.Latencies, 0.99)), goal, ms(percentile(r.Latencies, 1)))
		p("  sent late (waiting for a free connection, or for the generator) by p50 %.2f ms, p99 %.2f ms; CPU per request: server %s,",
			ms(percentile(r.Lags, 0.5)), ms(percentile(r.Lags, 0.99)), cpuText(ms(r.cpuPerRequest())))
		p("  generator %.2f ms; others used %.0f%% of the machine's CPU time meanwhile; errors %d", ms(r.generatorPerRequest()), 100*r.Others, r.Errors)
		var by []string
		for _, sm := range samples {
			ls := r.BySample[sm.Name]
			by = append(by, fmt.Sprintf("%s %.2f/%.2f", sm.Name, ms(percentile(ls, 0.5)), ms(percentile(ls, 0.99))))
		}
		p("  p50/p99 ms by sample: %s", strings.Join(by, ", "))
		p("")
	}
	if u := res.cpu; u != nil && u.wall > 0 {
		avail := float64(u.wall) * float64(runtime.NumCPU())
		pct := func(d time.Duration) float64 { return 100 * float64(d) / avail }
		p("CPU during the load (%s on %d CPUs): busy %.0f%%: credgate serve %.0f%%, OPA %.0f%%, load generator %.0f%%, other", u.wall.Round(time.Second),
			runtime.NumCPU(), pct(u.busy), pct(u.credgate), pct(u.opa), pct(u.generator))
		p("processes %.0f%% (the control plane, the kernel's interrupts, and anything else running on the machine)", pct(u.busy-u.credgate-u.opa-u.generator))
		p("")
	}
	p("parity, checked before the load on every sample (and every response under load checked against it): OPA's deny and")
	p("warn violations (rule, credential, message) equal what credgate's policies found in the same input document, and")
	p("credgate serve's responses equal the decision credgate's review package makes in process")
	for _, l := range res.parity {
		p("  %-15s %s", l.Sample, l.Decision)
	}
	_, err := w.Write(b.Bytes())
	return err
}

// targetText says what each target does per request.
var targetText = map[string]string{
	credgateMutating: "the AdmissionReview; the whole handler as credgate serve runs it: decode, credentials from the " +
		"informer cache, policy input, policies, injection, JSON patch; for a warned or refused pod an audit record (fsync) " +
		"naming its owners, and for a refused one an Event",
	credgateValidating: "the AdmissionReview of the pod as the mutating webhook admitted it; decode, decide; " +
		"for a refused pod the audit record and Event; no patch",
	opaDeciding: `{"input": <the policy input document credgate evaluates>}; evaluation of the same built-in ` +
		"rules, nothing else (OPA logs errors only)",
}

func collect(runs []*run, f func(*run) float64) []float64 {
	out := make([]float64, len(runs))
	for i, r := range runs {
		out[i] = f(r)
	}
	return out
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func sum(xs []float64) int {
	var n float64
	for _, x := range xs {
		n += x
	}
	return int(n)
}

// cpuText is a CPU time per request in milliseconds, "unknown" when it could not be read
// (the server's process was not found).
func cpuText(ms float64) string {
	if ms == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.2f ms", ms)
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.2fx", a/b)
}
