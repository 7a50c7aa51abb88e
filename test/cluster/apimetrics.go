package cluster

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// WebhookDurationMetric is the API server's histogram of each admission webhook call: from
// the request it sends to the response it has applied, so TLS, the network and credgate's
// handling, as every pod creation pays them. Labels: name (the webhook's), type (admit or
// validating), operation, rejected.
const WebhookDurationMetric = "apiserver_admission_webhook_admission_duration_seconds"

// WebhookID is a webhook as the API server's metrics name it: Name is the webhook's name,
// Type the metric's type label ("admit" for a mutating webhook, "validating").
type WebhookID struct{ Name, Type string }

// PodCreateWebhooks are credgate's webhooks that the API server calls when a pod is created —
// one mutating (type admit in the API server's metrics), then one validating — found in the
// webhook configurations named credgate, installed from manifests/webhook. It is an error
// when they are not exactly those two.
func (c *Cluster) PodCreateWebhooks(ctx context.Context) ([]WebhookID, error) {
	var hooks []WebhookID
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	if err := c.Client.Get(ctx, client.ObjectKey{Name: "credgate"}, &mwc); err != nil {
		return nil, err
	}
	for _, w := range mwc.Webhooks {
		if coversPodCreate(w.Rules) {
			hooks = append(hooks, WebhookID{w.Name, "admit"})
		}
	}
	var vwc admissionregistrationv1.ValidatingWebhookConfiguration
	if err := c.Client.Get(ctx, client.ObjectKey{Name: "credgate"}, &vwc); err != nil {
		return nil, err
	}
	for _, w := range vwc.Webhooks {
		if coversPodCreate(w.Rules) {
			hooks = append(hooks, WebhookID{w.Name, "validating"})
		}
	}
	if len(hooks) != 2 || hooks[0].Type != "admit" || hooks[1].Type != "validating" {
		return nil, fmt.Errorf("credgate's webhooks for pod creation: %v, want one mutating and one validating", hooks)
	}
	return hooks, nil
}

// coversPodCreate reports whether rules send the creation of a pod.
func coversPodCreate(rules []admissionregistrationv1.RuleWithOperations) bool {
	return slices.ContainsFunc(rules, func(r admissionregistrationv1.RuleWithOperations) bool {
		return slices.Contains(r.APIGroups, "") && slices.Contains(r.Resources, "pods") &&
			(slices.Contains(r.Operations, admissionregistrationv1.Create) || slices.Contains(r.Operations, admissionregistrationv1.OperationAll))
	})
}

// Histogram is what latency figures need of a Prometheus histogram: the cumulative count of
// observations at or under each bucket's upper bound ("le", +Inf included), and their sum.
type Histogram struct {
	Buckets map[float64]float64
	Sum     float64
}

// Count is the number of observations (the +Inf bucket's).
func (h Histogram) Count() float64 { return h.Buckets[math.Inf(1)] }

// Mean is the observations' mean, exact (from the sum, not the buckets).
func (h Histogram) Mean() float64 { return h.Sum / h.Count() }

// Share is the fraction of the observations at or under le, one of h's bounds.
func (h Histogram) Share(le float64) float64 { return h.Buckets[le] / h.Count() }

// Minus is h less an earlier scrape of the same histogram: what was observed in between.
func (h Histogram) Minus(earlier Histogram) Histogram {
	d := Histogram{Buckets: map[float64]float64{}, Sum: h.Sum - earlier.Sum}
	for le, n := range h.Buckets {
		d.Buckets[le] = n - earlier.Buckets[le]
	}
	return d
}

// Bounds are h's finite upper bounds, in order.
func (h Histogram) Bounds() []float64 {
	var b []float64
	for le := range h.Buckets {
		if !math.IsInf(le, 1) {
			b = append(b, le)
		}
	}
	slices.Sort(b)
	return b
}

// Quantile estimates the q-quantile of h as Prometheus' histogram_quantile does: it finds the
// bucket holding rank q·count and interpolates linearly within it, the first bucket starting
// at 0. A rank beyond the highest finite bound gives that bound. lower and upper are the
// bucket's bounds: how far the estimate can be trusted. NaN when h has no observations.
func (h Histogram) Quantile(q float64) (v, lower, upper float64) {
	bounds := h.Bounds()
	n := h.Count()
	if n == 0 || len(bounds) == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	rank := q * n
	b := sort.Search(len(bounds), func(i int) bool { return h.Buckets[bounds[i]] >= rank })
	if b == len(bounds) {
		last := bounds[len(bounds)-1]
		return last, last, math.Inf(1)
	}
	lower, upper, below := 0.0, bounds[b], 0.0
	if b > 0 {
		lower, below = bounds[b-1], h.Buckets[bounds[b-1]]
	}
	return lower + (upper-lower)*(rank-below)/(h.Buckets[upper]-below), lower, upper
}

// WebhookHistograms scrapes the API server's /metrics (with c.Config, the admin's) and
// returns the histogram of WebhookDurationMetric of each webhook in hooks, summed over its
// other labels (operation, rejected). A webhook the API server has not called yet has an
// empty histogram.
func (c *Cluster) WebhookHistograms(ctx context.Context, hooks []WebhookID) (map[WebhookID]*Histogram, error) {
	hc, err := rest.HTTPClientFor(c.Config)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(c.Config.Host, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	res, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics of the API server: %s", res.Status)
	}
	out := map[WebhookID]*Histogram{}
	for _, h := range hooks {
		out[h] = &Histogram{Buckets: map[float64]float64{}}
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		series, ok := strings.CutPrefix(line, WebhookDurationMetric+"_")
		if !ok {
			continue
		}
		suffix, rest, _ := strings.Cut(series, "{")
		if suffix != "bucket" && suffix != "sum" {
			continue
		}
		labels, value, err := parseSample("{" + rest)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", line, err)
		}
		h, ok := out[WebhookID{labels["name"], labels["type"]}]
		if !ok {
			continue
		}
		if suffix == "sum" {
			h.Sum += value
			continue
		}
		le, err := strconv.ParseFloat(labels["le"], 64)
		if err != nil {
			return nil, fmt.Errorf("%s: le: %w", line, err)
		}
		h.Buckets[le] += value
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
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
