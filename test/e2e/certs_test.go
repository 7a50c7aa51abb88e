//go:build e2e

package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/internal/app"
	"github.com/credgate/credgate/test/cluster"
)

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
		if err := c.Client.Create(t.Context(), p); err != nil {
			failures++
			t.Errorf("admission %d failed: %v", i, err)
		} else {
			created++
			if len(p.Spec.Containers[0].Env) == 0 {
				t.Errorf("pod %s admitted without its credentials", p.Name)
			}
		}
		if s, err := servingCertID(t.Context(), c.Port); err == nil {
			served[s] = true
		}
		var sec corev1.Secret
		if err := c.Client.Get(t.Context(), cluster.CertSecret, &sec); err == nil {
			stored[string(sec.Data["tls.crt"])] = true
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d admissions, %d failed, %d certificates in the Secret, %d served", created+failures, failures, len(stored), len(served))
	if len(served) < 3 {
		t.Errorf("%d serving certificates in 35s; want at least 3 (two rotations)", len(served))
	}
}

// TestReplicasShareRotatedCertificate: with a second replica running, one holds the rotation
// lease throughout, and both serve each renewed certificate, each verifying against the CA
// bundle credgate keeps in its webhook configurations (as the API server verifies it).
func TestReplicasShareRotatedCertificate(t *testing.T) {
	r2, err := c.StartReplica(t.Context(), "credgate-2")
	if err != nil {
		t.Fatal(err)
	}
	defer c.StopReplica(r2)

	holders := map[string]bool{}
	seen := map[int]map[string]bool{c.Port: {}, r2.Port: {}}
	failures := 0
	for deadline := time.Now().Add(25 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		var lease coordinationv1.Lease
		if err := c.Client.Get(t.Context(), client.ObjectKey{Namespace: cluster.Namespace, Name: app.LeaderElectionID}, &lease); err == nil && lease.Spec.HolderIdentity != nil {
			holders[*lease.Spec.HolderIdentity] = true
		}
		var mwc admissionregistrationv1.MutatingWebhookConfiguration
		if err := c.Client.Get(t.Context(), client.ObjectKey{Name: "credgate"}, &mwc); err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(mwc.Webhooks[0].ClientConfig.CABundle) {
			t.Fatal("the webhook configuration has no CA bundle")
		}
		for port := range seen {
			d := &tls.Dialer{Config: &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}}
			conn, err := d.DialContext(t.Context(), "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				failures++
				t.Errorf("replica on port %d: %v", port, err)
				continue
			}
			sum := sha256.Sum256(conn.(*tls.Conn).ConnectionState().PeerCertificates[0].Raw)
			seen[port][hex.EncodeToString(sum[:])] = true
			_ = conn.Close()
		}
	}
	t.Logf("lease holders %v; certificates served: primary %d, second replica %d; %d failed handshakes",
		holders, len(seen[c.Port]), len(seen[r2.Port]), failures)
	if len(holders) != 1 {
		t.Errorf("lease holders %v, want one throughout", holders)
	}
	for port, certs := range seen {
		if len(certs) < 2 {
			t.Errorf("replica on port %d served %d certificates in 25s; want it to reload the renewed ones", port, len(certs))
		}
	}
}
