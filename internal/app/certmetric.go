package app

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/credgate/credgate/internal/metrics"
)

// registerCertExpiry registers the gauge credgate_serving_certificate_expiry_timestamp_seconds
// with reg: the NotAfter of the first
// certificate in certDir/tls.crt, read at each scrape (the server reloads the file when it
// changes; so does the gauge), NaN while there is none or it cannot be read.
func registerCertExpiry(reg prometheus.Registerer, certDir string) error {
	g := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "credgate_serving_certificate_expiry_timestamp_seconds",
		Help: "When the serving certificate in --cert-dir expires (Unix time; NaN while it cannot be read); alert on this minus time() nearing 0.",
	}, func() float64 {
		t, err := certNotAfter(filepath.Join(certDir, "tls.crt"))
		if err != nil {
			return math.NaN()
		}
		return float64(t)
	})
	return metrics.Register(reg, "the certificate expiry gauge", g)
}

// certNotAfter returns the NotAfter (Unix seconds) of the first certificate of the PEM file path.
func certNotAfter(path string) (int64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return 0, errors.New("no certificate")
		}
		if blk.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(blk.Bytes)
			if err != nil {
				return 0, err
			}
			return c.NotAfter.Unix(), nil
		}
	}
}
