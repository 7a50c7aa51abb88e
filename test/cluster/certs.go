package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// CertSecret is where credgate keeps its certificates in the cluster.
var CertSecret = types.NamespacedName{Namespace: Namespace, Name: "credgate-serving-cert"}

// Namespace is credgate serve's own namespace (--namespace): its certificates and its Lease.
const Namespace = "credgate-system"

// prepareSelfManagedCerts creates credgate's namespace and the empty Secret the manifests
// ship, which the elected replica fills.
func (c *Cluster) prepareSelfManagedCerts(ctx context.Context) error {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: CertSecret.Namespace}}
	if err := c.Client.Create(ctx, ns); err != nil {
		return err
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: CertSecret.Name, Namespace: CertSecret.Namespace}}
	return c.Client.Create(ctx, sec)
}

// mountSecret plays the kubelet: it keeps tls.crt and tls.key in the certificate directory
// equal to the Secret's, replacing each file atomically, as a Secret volume is updated.
func (c *Cluster) mountSecret(ctx context.Context) (stop func()) {
	return c.mountSecretInto(ctx, c.CertDir)
}

// mountSecretInto keeps dir's tls.crt and tls.key equal to the Secret's.
func (c *Cluster) mountSecretInto(ctx context.Context, dir string) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var last []byte
		for {
			var s corev1.Secret
			if err := c.Client.Get(ctx, CertSecret, &s); err == nil && len(s.Data["tls.crt"]) > 0 &&
				!bytes.Equal(s.Data["tls.crt"], last) {
				if err := writeCerts(dir, s.Data["tls.crt"], s.Data["tls.key"]); err != nil {
					fmt.Fprintf(os.Stderr, "cluster: mount serving certificate: %v\n", err)
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
