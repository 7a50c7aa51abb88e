package cluster

import (
	"math"
	"testing"
)

// TestHistogramQuantile checks the interpolation against histogram_quantile's.
func TestHistogramQuantile(t *testing.T) {
	inf := math.Inf(1)
	// 10 under 5ms, 20 more under 25ms, 10 more under 100ms: 40 in all.
	h := Histogram{Buckets: map[float64]float64{0.005: 10, 0.025: 30, 0.1: 40, 0.5: 40, inf: 40}, Sum: 1.2}
	for _, tc := range []struct{ q, want, lower, upper float64 }{
		{0.125, 0.0025, 0, 0.005},    // rank 5 of the first 10: halfway from 0 to 5ms
		{0.5, 0.015, 0.005, 0.025},   // rank 20: 10 into the 20 of (5ms, 25ms]
		{0.99, 0.097, 0.025, 0.1},    // rank 39.6: 9.6 into the 10 of (25ms, 100ms]
		{1, 0.1, 0.025, 0.1},         // the last observation: the bucket's top
		{0.25, 0.005, 0, 0.005},      // rank 10: the first bucket's top exactly
		{0.75, 0.025, 0.005, 0.025},  // rank 30: the second's top exactly
		{0.26, 0.0054, 0.005, 0.025}, // rank 10.4: 0.4 of 20 into the second
	} {
		v, lower, upper := h.Quantile(tc.q)
		if math.Abs(v-tc.want) > 1e-9 || lower != tc.lower || upper != tc.upper {
			t.Errorf("Quantile(%v) = %v in [%v,%v], want %v in [%v,%v]", tc.q, v, lower, upper, tc.want, tc.lower, tc.upper)
		}
	}
	beyond := Histogram{Buckets: map[float64]float64{0.005: 1, 0.025: 1, inf: 2}}
	if v, lower, upper := beyond.Quantile(0.99); v != 0.025 || lower != 0.025 || !math.IsInf(upper, 1) {
		t.Errorf("a rank in the +Inf bucket: %v in [%v,%v], want the highest finite bound", v, lower, upper)
	}
	if v, _, _ := (Histogram{Buckets: map[float64]float64{0.005: 0, inf: 0}}).Quantile(0.5); !math.IsNaN(v) {
		t.Errorf("no observations: %v, want NaN", v)
	}
	if d := h.Minus(Histogram{Buckets: map[float64]float64{0.005: 4, 0.025: 4, 0.1: 4, 0.5: 4, inf: 4}, Sum: 0.3}); d.Count() != 36 || d.Buckets[0.005] != 6 ||
		math.Abs(d.Mean()-0.025) > 1e-9 {
		t.Errorf("Minus: %+v, mean %v", d, d.Mean())
	}
	if got := h.Share(0.025); got != 0.75 {
		t.Errorf("share at or under 25ms: %v, want 0.75", got)
	}
}

// TestHistogramSmall checks the methods on a histogram of 6 observations: 2 under 5ms, 3
// more under 10ms, one above.
func TestHistogramSmall(t *testing.T) {
	inf := math.Inf(1)
	h := Histogram{Buckets: map[float64]float64{0.005: 2, 0.01: 5, inf: 6}, Sum: 0.06}
	if got := h.Bounds(); len(got) != 2 || got[0] != 0.005 || got[1] != 0.01 {
		t.Errorf("Bounds() = %v, want [0.005 0.01]", got)
	}
	if h.Count() != 6 || math.Abs(h.Mean()-0.01) > 1e-12 {
		t.Errorf("Count() = %v, Mean() = %v, want 6, 0.01", h.Count(), h.Mean())
	}
	// Rank 3: 1 into the 3 of (5ms, 10ms].
	if v, lower, upper := h.Quantile(0.5); math.Abs(v-(0.005+0.005/3)) > 1e-12 || lower != 0.005 || upper != 0.01 {
		t.Errorf("Quantile(0.5) = %v in [%v,%v]", v, lower, upper)
	}
	// Rank 5.94: beyond 10ms, the highest finite bound.
	if v, lower, upper := h.Quantile(0.99); v != 0.01 || lower != 0.01 || !math.IsInf(upper, 1) {
		t.Errorf("Quantile(0.99) = %v in [%v,%v]", v, lower, upper)
	}
	d := h.Minus(Histogram{Buckets: map[float64]float64{0.005: 1, 0.01: 1, inf: 1}, Sum: 0.001})
	want := map[float64]float64{0.005: 1, 0.01: 4, inf: 5}
	if len(d.Buckets) != len(want) || math.Abs(d.Sum-0.059) > 1e-12 {
		t.Errorf("Minus: %+v", d)
	}
	for le, n := range want {
		if d.Buckets[le] != n {
			t.Errorf("Minus: bucket %v = %v, want %v", le, d.Buckets[le], n)
		}
	}
	if got := d.Share(0.01); got != 0.8 {
		t.Errorf("Share(0.01) of the difference = %v, want 0.8", got)
	}
}

func TestParseSample(t *testing.T) {
	labels, v, err := parseSample(`{name="mpod.credgate.dev",operation="CREATE",rejected="false",type="admit",le="0.005"} 42 1700000000000`)
	if err != nil || v != 42 || labels["name"] != "mpod.credgate.dev" || labels["type"] != "admit" || labels["le"] != "0.005" || len(labels) != 5 {
		t.Errorf("parseSample = %v, %v, %v", labels, v, err)
	}
	labels, v, err = parseSample(`{a="x\"y\\z\nw",le="+Inf",} 1.5e-3`)
	if err != nil || v != 0.0015 || labels["a"] != "x\"y\\z\nw" || labels["le"] != "+Inf" {
		t.Errorf("escapes, trailing comma: %q, %v, %v", labels, v, err)
	}
	if _, v, err := parseSample(`{} +Inf`); err != nil || !math.IsInf(v, 1) {
		t.Errorf("no labels, +Inf: %v, %v", v, err)
	}
	for _, bad := range []string{` 1`, `{a="x} 1`, `{a=x} 1`, `{a="x"}`, `{a="x"} y`} {
		if _, _, err := parseSample(bad); err == nil {
			t.Errorf("parseSample(%q): no error", bad)
		}
	}
}
