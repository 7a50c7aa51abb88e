package awscreds

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the refresher's Prometheus metrics.
type Metrics struct {
	assumeRole *prometheus.CounterVec
	expiry     *prometheus.GaugeVec
}

// NewMetrics registers the refresher's metrics with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		assumeRole: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credgate_aws_refreshes_total",
			Help: "Refreshes of assumeRole Credentials (one STS AssumeRole each), by result: minted, or the Ready reason of the failure.",
		}, []string{"result"}),
		expiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "credgate_aws_credentials_expiry_timestamp_seconds",
			Help: "When the temporary credentials of each assumeRole Credential expire (Unix time); alert on time() - this nearing 0.",
		}, []string{"namespace", "credential"}),
	}
	for _, c := range []prometheus.Collector{m.assumeRole, m.expiry} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register refresher metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) refreshed(result string) {
	if m != nil {
		m.assumeRole.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) expires(namespace, name string, unix float64) {
	if m != nil {
		m.expiry.WithLabelValues(namespace, name).Set(unix)
	}
}

func (m *Metrics) forget(namespace, name string) {
	if m != nil {
		m.expiry.DeleteLabelValues(namespace, name)
	}
}
