package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// WorkloadControllers are the binaries StartWorkloadControllers runs, and the CRDs it installs
// (bin/crds/<dir>): make workload-controllers builds them from their pinned modules.
var WorkloadControllers = []string{"kuberay-operator", "training-operator"}

// TrainingOperatorNamespace is the Kubeflow training operator's own namespace: the Secret of
// its webhook's certificate.
const TrainingOperatorNamespace = "kubeflow"

// StartWorkloadControllers installs the CRDs of KubeRay (RayCluster, RayJob, RayService) and of
// the Kubeflow training operator (PyTorchJob), as their pinned modules ship them, and runs both
// controllers beside the Job controller: KubeRay's operator, and the training operator with
// its PyTorchJob controller only. Neither's own admission webhook is registered. They are
// started once; Stop stops them.
func (c *Cluster) StartWorkloadControllers(ctx context.Context) error {
	if c.kuberay != nil {
		return nil
	}
	for _, b := range WorkloadControllers {
		if _, err := os.Stat(filepath.Join(c.Bin, b)); err != nil {
			return fmt.Errorf("bin/%s is missing: run make workload-controllers", b)
		}
	}
	c.progress("installing the CRDs of KubeRay and the training operator")
	if _, err := envtest.InstallCRDs(c.Config, envtest.CRDInstallOptions{
		Paths:              []string{filepath.Join(c.Bin, "crds", "kuberay"), filepath.Join(c.Bin, "crds", "training-operator")},
		ErrorIfPathMissing: true,
	}); err != nil {
		return fmt.Errorf("install the workload CRDs: %w", err)
	}
	// The training operator's webhook server, which cannot be turned off, starts its
	// controllers once its certificate rotator is ready: the rotator needs its Secret (empty
	// is fine) and a key pair where the kubelet would mount it, in a directory it hard-codes.
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: TrainingOperatorNamespace}}); err != nil {
		return err
	}
	if err := c.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "training-operator-webhook-cert", Namespace: TrainingOperatorNamespace}}); err != nil {
		return err
	}
	if err := selfSignedPair(filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs")); err != nil {
		return err
	}
	port, err := FreePort()
	if err != nil {
		return err
	}
	c.progress("starting the Kubeflow training operator (PyTorchJob) and KubeRay's operator")
	if c.trainingOperator, err = c.startWith([]string{"MY_POD_NAMESPACE=" + TrainingOperatorNamespace}, "training-operator",
		filepath.Join(c.Bin, "training-operator"), "--kubeconfig="+c.Kubeconfig, "--metrics-bind-address=0", "--health-probe-bind-address=0",
		"--leader-elect=false", "--enable-scheme=pytorchjob", "--webhook-server-port="+strconv.Itoa(port)); err != nil {
		return err
	}
	if c.kuberay, err = c.start("kuberay-operator", filepath.Join(c.Bin, "kuberay-operator"), "--kubeconfig="+c.Kubeconfig,
		"--metrics-addr=0", "--health-probe-bind-address=0", "--enable-leader-election=false"); err != nil {
		return err
	}
	return nil
}

// selfSignedPair writes a self-signed certificate and its key into dir as tls.crt and tls.key.
func selfSignedPair(dir string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "training-operator"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), DNSNames: []string{"localhost"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	return writeCerts(dir, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}))
}

// stopWorkloadControllers stops what StartWorkloadControllers started.
func (c *Cluster) stopWorkloadControllers() {
	for _, cmd := range []*exec.Cmd{c.kuberay, c.trainingOperator} {
		stop(cmd)
	}
}
