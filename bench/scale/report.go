package main

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/credgate/credgate/bench/internal/benchenv"
)

// writeReport writes the human-readable table of res: how it was made and on what, the
// objects and admissions, credgate serve's memory at each point, the Credentials' share of it,
// and the start-up times.
func writeReport(w io.Writer, res *results) error {
	o := res.o
	b := &bytes.Buffer{}
	p := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	n := o.namespaces * len(credentialNames)
	cmd := benchenv.Command("scale", "bench-scale")
	p("# credgate serve's memory and start-up with %d Credentials in %d namespaces (make bench-scale; bench/scale/main.go says how)", n, o.namespaces)
	p("command:    %s", cmd)
	p("date:       %s (took %s; the control plane and credgate started in %s)", res.started.UTC().Format(time.RFC3339),
		res.took.Round(time.Second), res.clusterStart.Round(time.Second))
	p("commit:     %s", benchenv.Commit(o.root))
	p("credgate:   %s:", benchenv.CredgateVersion(o.root))
	p("            serve as package test/cluster starts it (self-managed certificates, audit file, its service account), its defaults otherwise")
	p("machine:    %d CPUs (nproc), %s, %s/%s; load average (1 min) %s at the start, %s at the end%s", runtime.NumCPU(),
		benchenv.CPUModel(), runtime.GOOS, runtime.GOARCH, res.loadBefore, res.loadAfter, busy(res.loadBefore))
	p("            shared with the control plane (etcd, kube-apiserver, kube-controller-manager, credgate refresher), this program")
	p("            and whatever else ran: the memory is credgate's own, the times are a shared machine's")
	p("go:         %s (this program; credgate's is in its version above)", runtime.Version())
	p("objects:    %d namespaces x %d Credentials = %d Credentials, each with its Secret: %d objects created through the API", o.namespaces,
		len(credentialNames), n, res.objects)
	p("            server in %s (%.0f/s; %d workers, client QPS %.0f, burst %d)", res.create.Round(100*time.Millisecond),
		float64(res.objects)/res.create.Seconds(), o.workers, o.qps, o.burst)
	p("            %s", wrap("each namespace: "+shapesText(), 106, "            "))
	p("            a Credential as the API server sends it, without managed fields: %d bytes of JSON on average",
		res.decoded.json/int64(max(res.decoded.count, 1)))
	inj := res.injected
	p("admissions: %d training pods, one per namespace requesting its %d Credentials, created with dry-run (stored nowhere):", o.namespaces, len(credentialNames))
	p("            kube-apiserver called credgate's mutating and validating pod webhooks for each. All %d admitted and patched", o.namespaces)
	p("            (credgate.dev/injected naming all %d; each given %d variables, %d mounts, %d volumes, %d image-pull secret),",
		len(credentialNames), inj.env, inj.mounts, inj.volumes, inj.pullSecrets)
	p("            in %s (%.0f pods/s, %d workers); warnings to the client: %s; credgate_admission_requests_total +%.0f",
		res.admit.Round(100*time.Millisecond), float64(o.namespaces)/res.admit.Seconds(), o.workers, res.warnings,
		res.used.metrics[metricRequests]-res.idle.metrics[metricRequests])
	p("            Pods created directly (no owner): credgate reads no owner for the audit records of their warnings")
	p("")
	p("%-50s %7s %7s %7s %7s %7s %9s %7s %6s", "memory of credgate serve, MiB", "VmRSS", "VmHWM", "RssAnon", "RssFile", "heap", "heap", "GC", "gorou-")
	p("%-50s %7s %7s %7s %7s %7s %9s %7s %6s", "(/proc/<pid>/status; Go heap from its /metrics)", "", "", "", "", "in use", "objects", "goal", "tines")
	for _, s := range []snapshot{res.empty, res.emptySettled, res.watched, res.ready, res.idle, res.used, res.settled, res.last} {
		m := s.metrics
		p("%-50s %7.1f %7.1f %7.1f %7.1f %7.1f %9.0f %7.1f %6.0f", s.label, kib(s.mem.rss), kib(s.mem.hwm), kib(s.mem.anon), kib(s.mem.file),
			mib(m[metricHeapInuse]), m[metricHeapObject], mib(m[metricNextGC]), m[metricGoroutines])
	}
	p("GC goal: the heap size at which the next collection starts, about twice the heap live after the last one (GOGC %s,",
		metricText(res.empty.metrics, metricGOGC, 1, ""))
	p("         memory limit %s); heap in use also counts garbage not yet collected, and after a GC the free space of spans", metricText(res.empty.metrics, metricMemLimit, 1<<20, " MiB"))
	p("         that still hold a live object. RssFile is mostly the binary's pages.")
	p("")
	// Two measures of what a step left, each the difference of the rows after a GC: the heap in
	// use (which counts the free space of spans still holding a live object) and the live heap,
	// half the GC goal.
	inuse := func(a, b snapshot) float64 { return b.metrics[metricHeapInuse] - a.metrics[metricHeapInuse] }
	live := func(a, b snapshot) float64 { return (b.metrics[metricNextGC] - a.metrics[metricNextGC]) / 2 }
	share, shareLive := inuse(res.emptySettled, res.idle), live(res.emptySettled, res.idle)
	p("the Credentials' share, restarted with %d minus started with none, both after a GC: heap in use +%.1f MiB (%.1f KiB", n, mib(share), share/1024/float64(n))
	p("            per Credential), live heap (half the GC goal) +%.1f MiB (%.1f KiB), with their %d namespaces. Decoded in this",
		mib(shareLive), shareLive/1024/float64(n), o.namespaces)
	p("            process as credgate's informer holds them (typed, one allocation each, no managed fields; without the informer's")
	p("            indexes), the %d take %.1f MiB of live heap, %.1f KiB each", res.decoded.count, mib(float64(res.decoded.heap)),
		float64(res.decoded.heap)/1024/float64(max(res.decoded.count, 1)))
	p("what the %d admissions left, after minus before them, both after a GC: heap in use +%.1f MiB, live heap +%.1f MiB", o.namespaces,
		mib(inuse(res.idle, res.settled)), mib(live(res.idle, res.settled)))
	p("no heap profile: credgate serve serves no pprof (no /debug/pprof on its metrics or health port)")
	p("")
	p("%-72s %10s %10s", fmt.Sprintf("start-up with %d Credentials present, from just before", n), "restart 1", "restart 2")
	p("test/cluster's StartCredgate starts the process (polled every 5ms)")
	p("%-72s %10s %10s", "  webhook port accepts a TCP connection", seconds(res.restart1.listening), seconds(res.restart2.listening))
	p("%-72s %10s %10s", "  first AdmissionReview answered 200, allowed, with a patch", seconds(res.restart1.admitted), seconds(res.restart2.admitted))
	p("%-72s %10s %10s", "    that request sent at", seconds(res.restart1.sent), seconds(res.restart2.sent))
	p("%-72s %10s %10s", "  /readyz OK (webhook serving, Credential and Namespace informers synced)", seconds(res.restart1.ready), seconds(res.restart2.ready))
	if r := res.restart2; r.others > 0 {
		p("  restart 2: %d answers before the first admitted one; the first: %s", r.others, r.first)
	}
	p("for comparison: one List of the %d Credentials, asked as an informer's first list (resourceVersion 0), took %s", res.decoded.count, seconds(res.decoded.list))
	p("            from this process (median of 3, with credgate serve idle): the API server's part of an informer's sync")
	p("restart 1 sends no admission, so that its memory above is before any; restart 2 sends namespace %s's training pod", namespaceName(o.namespaces-1))
	p("straight to the webhook port over HTTPS, as the API server would, each as soon as the last was answered or refused")
	_, err := w.Write(b.Bytes())
	return err
}

// metricText is metric name of m divided by unit, then suffix; "unknown" when m lacks it, and
// "none" for math.MaxInt64 (the Go runtime's memory limit when none is set).
func metricText(m map[string]float64, name string, unit float64, suffix string) string {
	v, ok := m[name]
	switch {
	case !ok:
		return "unknown"
	case v >= math.MaxInt64:
		return "none"
	}
	return strconv.FormatFloat(v/unit, 'f', -1, 64) + suffix
}

func kib(v int64) float64   { return float64(v) / 1024 }
func mib(v float64) float64 { return v / (1 << 20) }

// seconds formats d for the start-up table; zero is "-" (not measured).
func seconds(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f s", d.Seconds())
}

// wrap breaks s into lines of at most width characters, the second and later indented.
func wrap(s string, width int, indent string) string {
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		if line != "" && len(line)+1+len(word) > width {
			lines, line = append(lines, line), ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	return strings.Join(append(lines, line), "\n"+indent)
}

// busy says, for the report, when the load average at the start says other work was running.
func busy(load string) string {
	if l, err := strconv.ParseFloat(load, 64); err == nil && l > float64(runtime.NumCPU()) {
		return " (above the CPUs: other work was running)"
	}
	return ""
}
