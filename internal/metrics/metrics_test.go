package metrics

import (
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestDurationBuckets: the bounds are the series (le) of the published histograms — queries
// and recorded data depend on them — so changing one is a decision, not an accident.
func TestDurationBuckets(t *testing.T) {
	want := []float64{0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5}
	if !slices.Equal(DurationBuckets, want) {
		t.Errorf("DurationBuckets = %v, want %v", DurationBuckets, want)
	}
}

// TestRegister: every collector is registered; a name registered twice fails with what was
// being registered.
func TestRegister(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := prometheus.NewCounter(prometheus.CounterOpts{Name: "a_total", Help: "a"})
	b := prometheus.NewCounter(prometheus.CounterOpts{Name: "b_total", Help: "b"})
	if err := Register(reg, "test metrics", a, b); err != nil {
		t.Fatal(err)
	}
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 2 {
		t.Errorf("gathered %d families, %v; want 2", len(mfs), err)
	}
	again := prometheus.NewCounter(prometheus.CounterOpts{Name: "a_total", Help: "a"})
	if err := Register(reg, "test metrics", again); err == nil || !strings.HasPrefix(err.Error(), "register test metrics: ") {
		t.Errorf("registering a_total twice: %v", err)
	}
}
