package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestCertExpiryGauge: the gauge follows the certificate file — NaN without one, its NotAfter
// once written, the new one's after a renewal.
func TestCertExpiryGauge(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	if err := registerCertExpiry(reg, dir); err != nil {
		t.Fatal(err)
	}
	read := func() float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil || len(mfs) != 1 {
			t.Fatalf("gather: %v, %d families", err, len(mfs))
		}
		return mfs[0].GetMetric()[0].GetGauge().GetValue()
	}
	if v := read(); !math.IsNaN(v) {
		t.Errorf("without a certificate: %v, want NaN", v)
	}
	for _, notAfter := range []time.Time{time.Unix(1900000000, 0), time.Unix(1950000000, 0)} {
		writeCert(t, filepath.Join(dir, "tls.crt"), notAfter)
		if v := read(); v != float64(notAfter.Unix()) {
			t.Errorf("gauge %v, want %d", v, notAfter.Unix())
		}
	}
	if n, err := testutil.GatherAndCount(reg, "credgate_serving_certificate_expiry_timestamp_seconds"); err != nil || n != 1 {
		t.Errorf("credgate_serving_certificate_expiry_timestamp_seconds: %d series, %v", n, err)
	}
}

func writeCert(t *testing.T, path string, notAfter time.Time) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: notAfter.Add(-time.Hour), NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
