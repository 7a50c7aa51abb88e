//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/credgate/credgate/api/v1alpha1"
)

// certSecret is where credgate keeps its certificates in the e2e cluster.
var certSecret = types.NamespacedName{Namespace: "credgate-system", Name: "credgate-serving-cert"}

// prepareSelfManagedCerts creates credgate's namespace and the empty Secret the manifests
// ship, which the elected replica fills.
func (c *cluster) prepareSelfManagedCerts(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: certSecret.Namespace}}
	if err := c.client.Create(ctx, ns); err != nil {
		return err
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: certSecret.Name, Namespace: certSecret.Namespace}}
	return c.client.Create(ctx, sec)
}

// mountSecret plays the kubelet: it keeps tls.crt and tls.key in the certificate directory
// equal to the Secret's, replacing each file atomically, as a Secret volume is updated.
func (c *cluster) mountSecret(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var last []byte
		for {
			var s corev1.Secret
			if err := c.client.Get(ctx, certSecret, &s); err == nil && len(s.Data["tls.crt"]) > 0 &&
				!bytes.Equal(s.Data["tls.crt"], last) {
				if err := writeCerts(c.certDir, s.Data["tls.crt"], s.Data["tls.key"]); err != nil {
					fmt.Fprintf(os.Stderr, "e2e: mount serving certificate: %v\n", err)
				} else {
					last = s.Data["tls.crt"]
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return func() { cancel(); <-done }
}

func writeCerts(dir string, crt, key []byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for name, data := range map[string][]byte{"tls.key": key, "tls.crt": crt} {
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, data, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			return err
		}
	}
	return nil
}

// servingCertID identifies the certificate credgate's webhook port presents: its SHA-256
// (cert-controller gives every certificate the same serial number).
func servingCertID(ctx context.Context, port int) (string, error) {
	d := &tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // reads the certificate, sends nothing
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	certs := conn.(*tls.Conn).ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return "", errors.New("no certificate")
	}
	sum := sha256.Sum256(certs[0].Raw)
	return hex.EncodeToString(sum[:]), nil
}

// TestCertRotationUnderLoad (scenario e): while a client creates labelled pods in a loop, the
// elected replica renews the serving certificate several times (every few seconds here), the
// server reloads each one from the mounted Secret, and no admission fails.
func TestCertRotationUnderLoad(t *testing.T) {
	ns := namespace(t)
	credential(t, ns, "wandb", v1alpha1.TypeWandB, map[string]string{"api-key": "k"}, nil)
	labels := map[string]string{"credentials.credgate.dev/wandb": "true"}

	served, stored := map[string]bool{}, map[string]bool{}
	failures, created := 0, 0
	deadline := time.Now().Add(35 * time.Second)
	for i := 0; time.Now().Before(deadline); i++ {
		p := pod(ns, fmt.Sprintf("p-%d", i), labels)
		if err := c.client.Create(t.Context(), p); err != nil {
			failures++
			t.Errorf("admission %d failed: %v", i, err)
		} else {
			created++
			if len(p.Spec.Containers[0].Env) == 0 {
				t.Errorf("pod %s admitted without its credentials", p.Name)
			}
		}
		if s, err := servingCertID(t.Context(), c.port); err == nil {
			served[s] = true
		}
		var sec corev1.Secret
		if err := c.client.Get(t.Context(), certSecret, &sec); err == nil {
			stored[string(sec.Data["tls.crt"])] = true
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d admissions, %d failed, %d certificates in the Secret, %d served", created+failures, failures, len(stored), len(served))
	if len(served) < 3 {
		t.Errorf("%d serving certificates in 35s; want at least 3 (two rotations)", len(served))
	}
}
