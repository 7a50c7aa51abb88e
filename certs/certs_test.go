package certs_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"slices"
	"testing"
	"time"

	"github.com/credgate/credgate/certs"
)

func TestGenerate(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	b, err := certs.Generate(certs.Options{Hosts: certs.ServiceHosts("credgate", "credgate-system"), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tls.X509KeyPair(b.ServingCert, b.Key); err != nil {
		t.Fatalf("serving certificate and key do not pair: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b.CACert) {
		t.Fatal("CA certificate does not parse")
	}
	block, _ := pem.Decode(b.ServingCert)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"credgate.credgate-system.svc", "localhost", "127.0.0.1"} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: host, Roots: pool, CurrentTime: now.Add(time.Hour)}); err != nil {
			t.Errorf("verify for %s: %v", host, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "evil.example.com", Roots: pool, CurrentTime: now}); err == nil {
		t.Error("certificate verifies for a host it does not name")
	}
	if got, want := cert.NotAfter.Sub(now).Round(time.Hour), 90*24*time.Hour; got != want {
		t.Errorf("serving validity = %v, want %v", got, want)
	}
	if !slices.Contains(cert.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Error("serving certificate lacks server auth usage")
	}
	if _, err := certs.Generate(certs.Options{}); err == nil {
		t.Error("Generate without hosts succeeded")
	}
}
