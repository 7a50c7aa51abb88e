package tempcreds

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/credgate/credgate/internal/metrics"
)

// Metrics are the refresher's Prometheus metrics.
type Metrics struct {
	assumeRole *prometheus.CounterVec
	expiry     *prometheus.GaugeVec
	gcp        *prometheus.CounterVec
	gcpExpiry  *prometheus.GaugeVec
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
		gcp: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "credgate_gcp_refreshes_total",
			Help: "Refreshes of GCP impersonation Credentials (one generateAccessToken each), by result: minted, or the Ready reason of the failure.",
		}, []string{"result"}),
		gcpExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "credgate_gcp_access_token_expiry_timestamp_seconds",
			Help: "When the access token of each GCP impersonation Credential expires (Unix time); alert on time() - this nearing 0.",
		}, []string{"namespace", "credential"}),
	}
	if err := metrics.Register(reg, "refresher metrics", m.assumeRole, m.expiry, m.gcp, m.gcpExpiry); err != nil {
		return nil, err
	}
	return m, nil
}

// refreshed counts a refresh of a credential of cloud ("aws" or "gcp").
func (m *Metrics) refreshed(cloud, result string) {
	switch {
	case m == nil:
	case cloud == "gcp":
		m.gcp.WithLabelValues(result).Inc()
	default:
		m.assumeRole.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) expires(cloud, namespace, name string, unix float64) {
	switch {
	case m == nil:
	case cloud == "gcp":
		m.gcpExpiry.WithLabelValues(namespace, name).Set(unix)
		m.expiry.DeleteLabelValues(namespace, name)
	default:
		m.expiry.WithLabelValues(namespace, name).Set(unix)
		m.gcpExpiry.DeleteLabelValues(namespace, name)
	}
}

func (m *Metrics) forget(namespace, name string) {
	if m != nil {
		m.expiry.DeleteLabelValues(namespace, name)
		m.gcpExpiry.DeleteLabelValues(namespace, name)
	}
}
