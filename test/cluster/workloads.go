package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/credgate/credgate/certs"
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
	pair, err := certs.Generate(certs.Options{Hosts: []string{"localhost"}})
	if err != nil {
		return err
	}
	if err := pair.Write(filepath.Join(os.TempDir(), "k8s-webhook-server", "serving-certs")); err != nil {
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

// stopWorkloadControllers stops what StartWorkloadControllers started.
func (c *Cluster) stopWorkloadControllers() {
	for _, cmd := range []*exec.Cmd{c.kuberay, c.trainingOperator} {
		stop(cmd)
	}
}
