package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Bundle is a CA and a serving certificate, PEM-encoded.
type Bundle struct {
	CACert, CAKey    []byte
	ServingCert, Key []byte
	NotAfter         time.Time
	DNSNames         []string
	IPAddresses      []net.IP
}

// Options choose the names and lifetimes of Generate.
type Options struct {
	// Hosts are the serving certificate's SANs: DNS names or IP addresses.
	Hosts []string
	// CAValidity and ServingValidity default to one year and 90 days.
	CAValidity, ServingValidity time.Duration
	// Now defaults to time.Now.
	Now func() time.Time
}

// ServiceDNSNames returns the DNS names a webhook Service is reached by, the API server's
// first (service.namespace.svc).
func ServiceDNSNames(service, namespace string) []string {
	return []string{service + "." + namespace + ".svc", service + "." + namespace + ".svc.cluster.local",
		service + "." + namespace, service}
}

// ServiceHosts returns the DNS names a webhook Service is reached by, plus localhost and the
// loopback addresses, for a certificate used both in the cluster and locally.
func ServiceHosts(service, namespace string) []string {
	return append(ServiceDNSNames(service, namespace), "localhost", "127.0.0.1", "::1")
}

// Generate creates a CA and a serving certificate for o.Hosts signed by it.
func Generate(o Options) (*Bundle, error) {
	if len(o.Hosts) == 0 {
		return nil, fmt.Errorf("generate certificates: no hosts given")
	}
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	caValidity, servingValidity := o.CAValidity, o.ServingValidity
	if caValidity == 0 {
		caValidity = 365 * 24 * time.Hour
	}
	if servingValidity == 0 {
		servingValidity = 90 * 24 * time.Hour
	}
	start := now().Add(-5 * time.Minute) // tolerate clock skew
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate CA key: %w", err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "credgate-ca"},
		NotBefore:             start,
		NotAfter:              start.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	ca, _ := x509.ParseCertificate(caDER)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate serving key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: o.Hosts[0]},
		NotBefore:    start,
		NotAfter:     start.Add(servingValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	for _, h := range o.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("create serving certificate: %w", err)
	}
	caKeyDER, err := x509.MarshalECPrivateKey(caKey)
	if err != nil {
		return nil, fmt.Errorf("encode CA key: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode serving key: %w", err)
	}
	return &Bundle{
		CACert:      pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		CAKey:       pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: caKeyDER}),
		ServingCert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:         pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		NotAfter:    tmpl.NotAfter,
		DNSNames:    tmpl.DNSNames,
		IPAddresses: tmpl.IPAddresses,
	}, nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Sprintf("read random serial: %v", err)) // crypto/rand does not fail on Linux
	}
	return n
}

// Write stores b in dir as ca.crt, ca.key, tls.crt and tls.key (the names controller-runtime's
// webhook server and a kubernetes.io/tls Secret use); keys are written mode 0600.
func (b *Bundle) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	for name, f := range map[string]struct {
		data []byte
		mode os.FileMode
	}{
		"ca.crt": {b.CACert, 0o644}, "ca.key": {b.CAKey, 0o600},
		"tls.crt": {b.ServingCert, 0o644}, "tls.key": {b.Key, 0o600},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), f.data, f.mode); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}
