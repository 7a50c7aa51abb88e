package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

// target is one endpoint the load measures: a URL, the requests of one mix cycle (mix()),
// and the client settings of its connections.
type target struct {
	Name string
	URL  string
	CA   *x509.CertPool
	// Requests are sent in this order, each client starting at its own place in it.
	Requests []request
	// Pid is the server's process, whose CPU time is read around each run (0: not read).
	Pid int
}

// request is one request body and the check of its response.
type request struct {
	Sample string
	Body   []byte
	// Check verifies a response body of status 200: the decision the sample must get.
	Check func(body []byte) error
}

// bodyBytes is the mean request body of t, in bytes.
func (t *target) bodyBytes() int {
	n := 0
	for _, r := range t.Requests {
		n += len(r.Body)
	}
	return n / max(len(t.Requests), 1)
}

// run is what one run of the load measured.
type run struct {
	// Requests are those answered within the measured time, Elapsed; they make the rate.
	Requests int
	Elapsed  time.Duration
	// Latencies are of the requests sent within the measured time, however late answered,
	// sorted; BySample the same by sample, sorted.
	Latencies []time.Duration
	BySample  map[string][]time.Duration
	// Lags are, in an open-loop run, how late each request was sent — waiting for a free
	// connection, or for the generator itself — sorted.
	Lags   []time.Duration
	Errors int
	// FirstError says what went wrong first.
	FirstError string
	// CPU is the server's CPU time over the whole run, warm-up included, Generator this
	// process's, and Answered the requests answered in that time (CPU 0: unknown).
	CPU, Generator time.Duration
	Answered       int
	// Others is the share of the machine's CPU time (0 to 1) that neither server nor the
	// generator used during the run: the control plane, and anything else running.
	Others float64
}

func (r *run) rate() float64 { return float64(r.Requests) / r.Elapsed.Seconds() }

// cpuPerRequest is the server's CPU time per request answered, 0 when unknown.
func (r *run) cpuPerRequest() time.Duration {
	if r.CPU == 0 || r.Answered == 0 {
		return 0
	}
	return r.CPU / time.Duration(r.Answered)
}

// generatorPerRequest is the load generator's CPU time per request answered.
func (r *run) generatorPerRequest() time.Duration {
	if r.Answered == 0 {
		return 0
	}
	return r.Generator / time.Duration(r.Answered)
}

// cpuClock reads the CPU time of the server pid and of this process.
type cpuClock struct {
	pid            int
	server, itself time.Duration
}

func startCPU(pid int) cpuClock {
	return cpuClock{pid: pid, server: cpuTime(pid), itself: cpuTime(os.Getpid())}
}

// since is the CPU time each has used since c was read.
func (c cpuClock) since() (server, itself time.Duration) {
	return cpuTime(c.pid) - c.server, cpuTime(os.Getpid()) - c.itself
}

// percentile is the nearest-rank p-th percentile (0 < p ≤ 1) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(i, 0)]
}

// tally is what one client of a run measured.
type tally struct {
	latencies, lags []time.Duration
	bySample        map[string][]time.Duration
	done, answered  int
}

func (t *tally) latency(sample string, d time.Duration) {
	t.latencies = append(t.latencies, d)
	if t.bySample == nil {
		t.bySample = map[string][]time.Duration{}
	}
	t.bySample[sample] = append(t.bySample[sample], d)
}

// collector gathers what the clients of one run measured.
type collector struct {
	mu     sync.Mutex
	all    tally
	errors int
	first  string
}

func (c *collector) add(t *tally, cl *loadClient) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.all.latencies = append(c.all.latencies, t.latencies...)
	c.all.lags = append(c.all.lags, t.lags...)
	if c.all.bySample == nil {
		c.all.bySample = map[string][]time.Duration{}
	}
	for s, ls := range t.bySample {
		c.all.bySample[s] = append(c.all.bySample[s], ls...)
	}
	c.all.done += t.done
	c.all.answered += t.answered
	c.errors += cl.errs
	if c.first == "" {
		c.first = cl.first
	}
}

func (c *collector) run(elapsed time.Duration, clock cpuClock) *run {
	cpu, gen := clock.since()
	slices.Sort(c.all.latencies)
	slices.Sort(c.all.lags)
	for _, ls := range c.all.bySample {
		slices.Sort(ls)
	}
	return &run{Requests: c.all.done, Elapsed: elapsed, Latencies: c.all.latencies, BySample: c.all.bySample,
		Lags: c.all.lags, Errors: c.errors, FirstError: c.first, CPU: cpu, Generator: gen, Answered: c.all.answered}
}

// loadClient sends one target's requests over a connection of its own, checking every response.
type loadClient struct {
	t    *target
	hc   *http.Client
	buf  bytes.Buffer
	errs int
	// first is the first error's description.
	first string
}

func newLoadClient(t *target, http1 bool) *loadClient {
	return &loadClient{t: t, hc: newClient(t.CA, http1)}
}

// send posts r and reads and checks the response; it returns when the response is read (the
// latency ends there; the check does not count in it) and whether it passed.
func (c *loadClient) send(ctx context.Context, r *request) (end time.Time, ok bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.t.URL, bytes.NewReader(r.Body))
	if err != nil {
		return time.Now(), c.fail(ctx, r, err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := c.hc.Do(req)
	if err != nil {
		return time.Now(), c.fail(ctx, r, err)
	}
	c.buf.Reset()
	_, err = c.buf.ReadFrom(res.Body)
	_ = res.Body.Close()
	end = time.Now()
	switch {
	case err != nil:
		return end, c.fail(ctx, r, err)
	case res.StatusCode != http.StatusOK:
		return end, c.fail(ctx, r, fmt.Errorf("HTTP %d: %.300s", res.StatusCode, c.buf.Bytes()))
	}
	if err := r.Check(c.buf.Bytes()); err != nil {
		return end, c.fail(ctx, r, err)
	}
	return end, true
}

// fail counts an error, unless the run was interrupted (ctx done); it returns false.
func (c *loadClient) fail(ctx context.Context, r *request, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	c.errs++
	if c.first == "" {
		c.first = fmt.Sprintf("%s, sample %s: %v", c.t.Name, r.Sample, err)
	}
	return false
}

func (c *loadClient) close() { c.hc.CloseIdleConnections() }

// connect opens the client's connection with a HEAD request, whose answer (an error: neither
// server decides anything for it) is ignored.
func (c *loadClient) connect(ctx context.Context) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, c.t.URL, http.NoBody)
	if err != nil {
		return
	}
	if res, err := c.hc.Do(req); err == nil {
		_, _ = io.Copy(io.Discard, res.Body)
		_ = res.Body.Close()
	}
}

// closedLoop runs clients concurrent clients against t, each sending its next request as soon
// as the previous one is answered, for warm then d. The rate counts the requests answered in
// d; the latencies are those of the requests sent in d, the last ones waited for.
func closedLoop(ctx context.Context, t *target, clients int, warm, d time.Duration, http1 bool) *run {
	var col collector
	var wg sync.WaitGroup
	clock := startCPU(t.Pid)
	start := time.Now()
	from, until := start.Add(warm), start.Add(warm+d)
	for i := range clients {
		wg.Go(func() {
			c := newLoadClient(t, http1)
			defer c.close()
			var tl tally
			// Each client starts at its own place in the mix, so that they do not send the same
			// sample at the same time.
			for n := i * len(t.Requests) / clients; ctx.Err() == nil; n++ {
				r := &t.Requests[n%len(t.Requests)]
				sent := time.Now()
				if !sent.Before(until) {
					break
				}
				end, ok := c.send(ctx, r)
				if !ok {
					continue
				}
				tl.answered++
				if !sent.Before(from) {
					tl.latency(r.Sample, end.Sub(sent))
				}
				if !end.Before(from) && !end.After(until) {
					tl.done++
				}
			}
			col.add(&tl, c)
		})
	}
	wg.Wait()
	return col.run(d, clock)
}

// openLoop sends t's requests at rate a second, evenly spaced, whether or not earlier ones
// were answered, for warm then d, over a pool of conns connections, each opened (one request,
// unmeasured) before the first is due. Each latency runs from when its request was due, so a
// request waiting for a connection, or sent late, counts the wait (no coordinated omission);
// Lags says how late requests were sent.
func openLoop(ctx context.Context, t *target, rate float64, conns int, warm, d time.Duration, http1 bool) *run {
	type job struct {
		due      time.Time
		n        int
		measured bool
	}
	interval := time.Duration(float64(time.Second) / rate)
	jobs := make(chan job, int(rate*(warm+d).Seconds())+1)
	var col collector
	var wg, connected sync.WaitGroup
	clock := startCPU(t.Pid)
	connected.Add(conns)
	for range conns {
		wg.Go(func() {
			c := newLoadClient(t, http1)
			defer c.close()
			var tl tally
			c.connect(ctx)
			connected.Done()
			for j := range jobs {
				sent := time.Now()
				r := &t.Requests[j.n%len(t.Requests)]
				end, ok := c.send(ctx, r)
				if !ok {
					continue
				}
				tl.answered++
				if j.measured {
					tl.latency(r.Sample, end.Sub(j.due))
					tl.lags = append(tl.lags, sent.Sub(j.due))
					tl.done++
				}
			}
			col.add(&tl, c)
		})
	}
	connected.Wait()
	start := time.Now()
	from, until := start.Add(warm), start.Add(warm+d)
	for n := 0; ctx.Err() == nil; n++ {
		due := start.Add(time.Duration(n) * interval)
		if !due.Before(until) {
			break
		}
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		jobs <- job{due: due, n: n, measured: !due.Before(from)}
	}
	close(jobs)
	wg.Wait()
	return col.run(d, clock)
}

// post sends one request over hc and returns the response body of a 200.
func post(ctx context.Context, hc *http.Client, url string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d: %.300s", res.StatusCode, b)
	}
	return b, nil
}
