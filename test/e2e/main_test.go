//go:build e2e

// Package e2e runs credgate against a real control plane: etcd and kube-apiserver (started
// by controller-runtime's envtest from bin/), kube-controller-manager running the Job and
// CronJob controllers, and credgate serve as its own process over TLS, registered with the
// webhook configurations of manifests/webhook and the CRD of manifests/crd. make test builds
// the binaries (make control-plane build) and runs it with -tags e2e.
package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/credgate/credgate/webhook"
)

// cluster is the control plane and credgate the tests share.
type cluster struct {
	root      string // the repository
	bin       string
	cfg       *rest.Config
	client    client.Client
	kubeconf  string // admin kubeconfig file
	certDir   string
	auditPath string
	port      int // credgate's webhook port
	metrics   string
	credgate  *exec.Cmd
	logDir    string
}

var c *cluster

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		code = 1
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return 0, err
	}
	bin := filepath.Join(root, "bin")
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "credgate"} {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return 0, fmt.Errorf("bin/%s is missing: run make control-plane build (make test does)", b)
		}
	}
	work, err := os.MkdirTemp("", "credgate-e2e-")
	if err != nil {
		return 0, err
	}
	code := 1
	defer func() {
		if code == 0 {
			_ = os.RemoveAll(work)
		} else {
			fmt.Fprintf(os.Stderr, "e2e: logs of the control plane and credgate kept in %s\n", work)
		}
	}()

	env := &envtest.Environment{
		BinaryAssetsDirectory: bin,
		CRDDirectoryPaths:     []string{filepath.Join(root, "manifests", "crd")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		return 0, fmt.Errorf("start etcd and kube-apiserver: %w", err)
	}
	defer func() { _ = env.Stop() }()

	c = &cluster{root: root, bin: bin, cfg: cfg, certDir: filepath.Join(work, "certs"),
		auditPath: filepath.Join(work, "audit", "audit.log"), logDir: work}
	scheme, err := webhook.NewScheme()
	if err != nil {
		return 0, err
	}
	if c.client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return 0, err
	}
	admin, err := env.AddUser(envtest.User{Name: "e2e-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return 0, err
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		return 0, err
	}
	c.kubeconf = filepath.Join(work, "kubeconfig")
	if err := os.WriteFile(c.kubeconf, kc, 0o600); err != nil {
		return 0, err
	}

	ctx := context.Background()
	kcm, err := c.start("kube-controller-manager", filepath.Join(bin, "kube-controller-manager"),
		"--kubeconfig="+c.kubeconf, "--controllers=job,cronjob", "--leader-elect=false",
		"--secure-port=0", "--use-service-account-credentials=false")
	if err != nil {
		return 0, err
	}
	defer stop(kcm)

	if c.port, err = freePort(); err != nil {
		return 0, err
	}
	// credgate keeps its own certificates (--cert-management=self) in a Secret of its
	// namespace; the harness plays the kubelet, mounting the Secret into the certificate
	// directory as it changes.
	if err := c.prepareSelfManagedCerts(ctx); err != nil {
		return 0, err
	}
	stopMount := c.mountSecret(ctx)
	defer stopMount()
	if err := c.installWebhooks(ctx); err != nil {
		return 0, err
	}
	if err := c.startCredgate(ctx); err != nil {
		return 0, err
	}
	defer func() { stop(c.credgate) }()
	code = m.Run()
	return code, nil
}

// start runs a binary of the control plane, its output in a log file kept with the test's
// work directory (shown when it fails to start).
func (c *cluster) start(name, path string, args ...string) (*exec.Cmd, error) {
	log, err := os.Create(filepath.Join(c.logDir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return cmd, nil
}

func stop(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// startCredgate runs credgate serve and waits until it is ready.
func (c *cluster) startCredgate(ctx context.Context) error {
	mport, err := freePort()
	if err != nil {
		return err
	}
	hport, err := freePort()
	if err != nil {
		return err
	}
	c.metrics = "127.0.0.1:" + strconv.Itoa(mport)
	health := "127.0.0.1:" + strconv.Itoa(hport)
	c.credgate, err = c.start("credgate", filepath.Join(c.bin, "credgate"), "serve",
		"--kubeconfig="+c.kubeconf, "--cert-dir="+c.certDir, "--host=127.0.0.1", "--port="+strconv.Itoa(c.port),
		"--metrics-bind-address="+c.metrics, "--health-probe-bind-address="+health,
		"--audit-file="+c.auditPath,
		// Self-managed certificates, renewed every few seconds so that the tests run while
		// they rotate (TestCertRotationUnderLoad counts the rotations).
		"--cert-management=self", "--cert-secret="+certSecret.Namespace+"/"+certSecret.Name,
		"--cert-dns-name=localhost", "--cert-validity=30s", "--cert-renew-before=22s", "--cert-check-interval=2s")
	if err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get("http://" + health + "/readyz")
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return c.waitTLS(ctx)
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(c.logDir, "credgate.log"))
	return fmt.Errorf("credgate did not become ready in 60s:\n%s", log)
}

// waitTLS waits until the webhook port accepts TLS connections.
func (c *cluster) waitTLS(ctx context.Context) error {
	d := &tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // only probes that the port serves TLS
	for range 50 {
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)))
		if err == nil {
			return conn.Close()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.New("credgate's webhook port does not serve TLS")
}

// installWebhooks creates the webhook configurations of manifests/webhook, each pointed at
// the local credgate (its service reference replaced by a URL with the same path). Their CA
// bundle is credgate's to fill in.
func (c *cluster) installWebhooks(ctx context.Context) error {
	data, err := os.ReadFile(filepath.Join(c.root, "manifests", "webhook", "webhooks.yaml"))
	if err != nil {
		return err
	}
	base := "https://localhost:" + strconv.Itoa(c.port)
	point := func(cc *admissionregistrationv1.WebhookClientConfig) {
		u := base + *cc.Service.Path
		cc.URL, cc.Service = &u, nil
	}
	for doc := range bytes.SplitSeq(data, []byte("\n---\n")) {
		var meta struct{ Kind string }
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			return err
		}
		var obj client.Object
		switch meta.Kind {
		case "MutatingWebhookConfiguration":
			m := &admissionregistrationv1.MutatingWebhookConfiguration{}
			if err := yaml.UnmarshalStrict(doc, m); err != nil {
				return err
			}
			for i := range m.Webhooks {
				point(&m.Webhooks[i].ClientConfig)
			}
			obj = m
		case "ValidatingWebhookConfiguration":
			v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
			if err := yaml.UnmarshalStrict(doc, v); err != nil {
				return err
			}
			for i := range v.Webhooks {
				point(&v.Webhooks[i].ClientConfig)
			}
			obj = v
		default:
			return fmt.Errorf("manifests/webhook/webhooks.yaml: unexpected kind %q", meta.Kind)
		}
		if err := c.client.Create(ctx, obj); err != nil {
			return fmt.Errorf("create %s: %w", meta.Kind, err)
		}
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}
