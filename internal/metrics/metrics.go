// Package metrics holds what credgate's Prometheus metrics share: the buckets of the
// histograms that time admissions, and the registration of a package's collectors.
package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// DurationBuckets are the histogram buckets of admission and policy timings
// (credgate_admission_duration_seconds, credgate_policy_evaluation_duration_seconds): fine below
// 10 ms, where a healthy admission falls, coarse up to the webhook timeout.
var DurationBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5}

// Register registers cs with reg, stopping at the first that fails: "register <what>: <why>".
func Register(reg prometheus.Registerer, what string, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register %s: %w", what, err)
		}
	}
	return nil
}
