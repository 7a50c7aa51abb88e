package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"github.com/credgate/credgate/internal/app"
)

// Cluster is a running control plane with credgate registered in it.
type Cluster struct {
	Root       string // the repository
	Bin        string
	Config     *rest.Config
	Client     client.Client
	Kubeconfig string // an admin kubeconfig file
	CertDir    string
	AuditPath  string
	// PolicyDir is every credgate serve's --policy-dir, empty at start: a test writes a
	// .rego file into it and waits until it decides (reloaded every 500ms).
	PolicyDir string
	Port      int    // credgate's webhook port
	Metrics   string // credgate's metrics address
	// RefresherMetrics is credgate refresher's metrics address.
	RefresherMetrics string
	WorkDir          string // logs of every process, certificates, the audit file

	o         Options
	env       *envtest.Environment
	kcm       *exec.Cmd
	credgate  *exec.Cmd
	refresher *exec.Cmd
	stopMount func()
	closeLogs []io.Closer
	// The workload controllers (StartWorkloadControllers), nil until started.
	kuberay, trainingOperator *exec.Cmd
	// Kubeconfigs of the service accounts credgate serve and credgate refresher run as.
	servingKubeconfig, refresherKubeconfig string
}

// Options configure Start.
type Options struct {
	// Root is the repository; its bin/ holds the binaries, its manifests/ the CRD and the
	// webhook configurations.
	Root string
	// Progress, when set, receives a line per step.
	Progress io.Writer
	// CertValidity, RenewBefore: the self-managed certificate's lifetime and how long before
	// its end it is renewed; short ones make it rotate during the run (zero: a day, an hour).
	CertValidity, RenewBefore time.Duration
	// CredgateArgs are more flags of every credgate serve started.
	CredgateArgs []string
	// RefresherArgs are more flags of credgate refresher.
	RefresherArgs []string
}

// Binaries are what Start needs in bin/.
var Binaries = []string{"etcd", "kube-apiserver", "kube-controller-manager", "credgate"}

// Start starts etcd and kube-apiserver (envtest) with credgate's CRD, kube-controller-manager
// with the Job and CronJob controllers, credgate serve over TLS with self-managed
// certificates, registered with the webhook configurations of manifests/webhook, and credgate
// refresher. credgate serve and credgate refresher run as their service accounts, with the
// RBAC of manifests/. Stop stops them all.
func Start(ctx context.Context, o Options) (_ *Cluster, err error) {
	bin := filepath.Join(o.Root, "bin")
	for _, b := range Binaries {
		if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
			return nil, fmt.Errorf("bin/%s is missing: run make control-plane build", b)
		}
	}
	if o.CertValidity == 0 {
		o.CertValidity, o.RenewBefore = 24*time.Hour, time.Hour
	}
	work, err := os.MkdirTemp("", "credgate-cluster-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Root: o.Root, Bin: bin, WorkDir: work, CertDir: filepath.Join(work, "certs"),
		AuditPath: filepath.Join(work, "audit", "audit.log"),
		PolicyDir: filepath.Join(work, "policies"), o: o}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	if err := os.MkdirAll(c.PolicyDir, 0o750); err != nil {
		return nil, err
	}
	c.progress("starting etcd and kube-apiserver")
	c.env = &envtest.Environment{
		BinaryAssetsDirectory: bin,
		CRDDirectoryPaths:     []string{filepath.Join(o.Root, "manifests", "crd")},
		ErrorIfCRDPathMissing: true,
	}
	// The API server advertises itself, and its service-account issuer's keys
	// (/openid/v1/jwks, for web identities), on the loopback address it serves.
	api := c.env.ControlPlane.GetAPIServer()
	api.Configure().Set("advertise-address", "127.0.0.1")
	// The API server's certificates and keys, and etcd's data, in directories of the cluster's
	// own: envtest keeps them through RestartAPIServer and RestartEtcd (its own temporary
	// directories it would remove, and make new keys that no client trusts).
	api.CertDir, c.env.ControlPlane.Etcd = filepath.Join(work, "kube-apiserver"), &envtest.Etcd{DataDir: filepath.Join(work, "etcd")}
	for _, d := range []string{api.CertDir, c.env.ControlPlane.Etcd.DataDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	apiLog, err := os.OpenFile(filepath.Join(work, "kube-apiserver.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	c.closeLogs = append(c.closeLogs, apiLog)
	api.Out, api.Err = apiLog, apiLog
	// The grace period of a SIGTERM'd kube-apiserver (or etcd) before SIGKILL, as the
	// kubelet's: kube-apiserver waits for requests in flight up to its request timeout (60s).
	c.env.ControlPlaneStopTimeout = stopGrace
	if c.Config, err = c.env.Start(); err != nil {
		return nil, fmt.Errorf("start etcd and kube-apiserver: %w", err)
	}
	scheme, err := app.NewScheme()
	if err != nil {
		return nil, err
	}
	if c.Client, err = client.New(c.Config, client.Options{Scheme: scheme}); err != nil {
		return nil, err
	}
	admin, err := c.env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, err
	}
	kc, err := admin.KubeConfig()
	if err != nil {
		return nil, err
	}
	c.Kubeconfig = filepath.Join(work, "kubeconfig")
	if err := os.WriteFile(c.Kubeconfig, kc, 0o600); err != nil {
		return nil, err
	}
	c.progress("starting kube-controller-manager (job and cronjob controllers)")
	if c.kcm, err = c.start("kube-controller-manager", filepath.Join(bin, "kube-controller-manager"),
		"--kubeconfig="+c.Kubeconfig, "--controllers=job,cronjob", "--leader-elect=false",
		"--secure-port=0", "--use-service-account-credentials=false"); err != nil {
		return nil, err
	}
	if c.Port, err = FreePort(); err != nil {
		return nil, err
	}
	// credgate keeps its own certificates (--cert-management=self) in a Secret of its
	// namespace; the cluster plays the kubelet, mounting the Secret into the certificate
	// directory as it changes.
	if err := c.prepareSelfManagedCerts(ctx); err != nil {
		return nil, err
	}
	if err := c.installRBAC(ctx); err != nil {
		return nil, err
	}
	if c.servingKubeconfig, err = c.kubeconfigFor(ServingAccount); err != nil {
		return nil, err
	}
	if c.refresherKubeconfig, err = c.kubeconfigFor(RefresherAccount); err != nil {
		return nil, err
	}
	c.stopMount = c.mountSecret(ctx)
	if err := c.installWebhooks(ctx); err != nil {
		return nil, err
	}
	c.progress("starting credgate serve on 127.0.0.1:" + strconv.Itoa(c.Port))
	if err := c.StartCredgate(ctx); err != nil {
		return nil, err
	}
	c.progress("starting credgate refresher")
	if err := c.StartRefresher(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// StartRefresher runs credgate refresher and waits until it is ready.
func (c *Cluster) StartRefresher(ctx context.Context) error { return c.StartRefresherWith(ctx, nil) }

// StartRefresherWith runs credgate refresher with env (KEY=VALUE, over the test's own
// environment) and more flags than Options.RefresherArgs, and waits until it is ready.
func (c *Cluster) StartRefresherWith(ctx context.Context, env []string, moreArgs ...string) error {
	r, err := c.startRefresher(ctx, "credgate-refresher", env, moreArgs)
	if err != nil {
		return err
	}
	c.refresher, c.RefresherMetrics = r.cmd, r.Metrics
	return nil
}

// startRefresher runs a credgate refresher process, logging to name.log, and waits until it is
// ready.
func (c *Cluster) startRefresher(ctx context.Context, name string, env, moreArgs []string) (*Replica, error) {
	mport, err := FreePort()
	if err != nil {
		return nil, err
	}
	hport, err := FreePort()
	if err != nil {
		return nil, err
	}
	r := &Replica{Metrics: "127.0.0.1:" + strconv.Itoa(mport), Health: "127.0.0.1:" + strconv.Itoa(hport)}
	args := append([]string{"refresher", "--kubeconfig=" + c.refresherKubeconfig, "--namespace=" + RefresherNamespace,
		"--metrics-bind-address=" + r.Metrics, "--health-probe-bind-address=" + r.Health}, c.o.RefresherArgs...)
	args = append(args, moreArgs...)
	if r.cmd, err = c.startWith(env, name, filepath.Join(c.Bin, "credgate"), args...); err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx, name, r.Health); err != nil {
		stop(r.cmd)
		return nil, err
	}
	return r, nil
}

// StartRefresherReplica starts another credgate refresher beside the one StartRefresher runs,
// with the same flags: a stand-by until it wins the Lease. StopReplica stops it.
func (c *Cluster) StartRefresherReplica(ctx context.Context, name string) (*Replica, error) {
	return c.startRefresher(ctx, name, nil, nil)
}

// KillRefresher kills credgate refresher (SIGKILL: its Lease is not released) and waits until
// it has exited; StartRefresher starts it again.
func (c *Cluster) KillRefresher() {
	if c.refresher == nil || c.refresher.Process == nil {
		return
	}
	_ = c.refresher.Process.Kill()
	_ = c.refresher.Wait()
	c.refresher = nil
}

// StopRefresher stops credgate refresher.
func (c *Cluster) StopRefresher() {
	stop(c.refresher)
	c.refresher = nil
}

// Stop stops credgate, kube-controller-manager, kube-apiserver and etcd. The work directory
// stays (its logs tell what happened); RemoveWorkDir removes it.
func (c *Cluster) Stop() {
	c.StopRefresher()
	c.StopCredgate()
	c.stopWorkloadControllers()
	stop(c.kcm)
	if c.stopMount != nil {
		c.stopMount()
	}
	if c.env != nil {
		_ = c.env.Stop()
	}
	for _, l := range c.closeLogs {
		_ = l.Close()
	}
}

// stopGrace is how long a stopped kube-apiserver or etcd has to exit before it is killed.
const stopGrace = 10 * time.Second

// RestartAPIServer stops kube-apiserver (SIGTERM, and SIGKILL if it has not exited after
// stopGrace, as the kubelet does) and starts it again on the same address with the same
// certificates, waiting until it is healthy. It returns how long the API server was away:
// from the stop to the moment it answered again.
func (c *Cluster) RestartAPIServer() (time.Duration, error) {
	api := c.env.ControlPlane.GetAPIServer()
	at := time.Now()
	if err := api.Stop(); err != nil && !strings.Contains(err.Error(), "timeout waiting for process") {
		return 0, fmt.Errorf("stop kube-apiserver: %w", err)
	}
	// Killed, its port is free once the process is gone.
	addr := net.JoinHostPort(api.Address, api.Port)
	_ = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return true, nil
		}
		_ = conn.Close()
		return false, nil
	})
	if err := api.Start(); err != nil {
		return 0, fmt.Errorf("start kube-apiserver again: %w", err)
	}
	return time.Since(at), nil
}

// RestartEtcd stops etcd (SIGTERM) and starts it again on the same address with the same data,
// waiting until it is healthy; kube-apiserver stays up and reconnects. It returns how long
// etcd was away.
func (c *Cluster) RestartEtcd(down time.Duration) (time.Duration, error) {
	etcd := c.env.ControlPlane.Etcd
	at := time.Now()
	if err := etcd.Stop(); err != nil && !strings.Contains(err.Error(), "timeout waiting for process") {
		return 0, fmt.Errorf("stop etcd: %w", err)
	}
	time.Sleep(down)
	if err := etcd.Start(); err != nil {
		return 0, fmt.Errorf("start etcd again: %w", err)
	}
	return time.Since(at), nil
}

// RemoveWorkDir removes the work directory.
func (c *Cluster) RemoveWorkDir() { _ = os.RemoveAll(c.WorkDir) }

// StopCredgate stops credgate serve (StartCredgate starts it again).
func (c *Cluster) StopCredgate() {
	stop(c.credgate)
	c.credgate = nil
}

func (c *Cluster) progress(msg string) {
	if c.o.Progress != nil {
		fmt.Fprintln(c.o.Progress, "== "+msg)
	}
}

// start runs a binary of the control plane, its output in a log file kept with the test's
// work directory (shown when it fails to start).
func (c *Cluster) start(name, path string, args ...string) (*exec.Cmd, error) {
	return c.startWith(nil, name, path, args...)
}

// startWith starts path with env over the test's environment, logging to name.log in the work
// directory: appended to, so that a process started again keeps its predecessor's log.
func (c *Cluster) startWith(env []string, name, path string, args ...string) (*exec.Cmd, error) {
	log, err := os.OpenFile(filepath.Join(c.WorkDir, name+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(path, args...)
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
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

// KillCredgate kills credgate serve (SIGKILL: no lease released, no request drained) and waits
// until it has exited; StartCredgate starts it again.
func (c *Cluster) KillCredgate() {
	if c.credgate == nil || c.credgate.Process == nil {
		return
	}
	_ = c.credgate.Process.Kill()
	_ = c.credgate.Wait()
	c.credgate = nil
}

// StartCredgate runs credgate serve and waits until it is ready.
func (c *Cluster) StartCredgate(ctx context.Context) error {
	r, err := c.startReplica(ctx, "credgate", c.Port, c.CertDir, c.AuditPath)
	if err != nil {
		return err
	}
	c.credgate, c.Metrics = r.cmd, r.Metrics
	return nil
}

// Replica is a further credgate serve process beside the one the webhook configurations
// call: same cluster, same certificate Secret, its own port, certificate directory (mounted
// from the Secret like every replica's) and audit file.
type Replica struct {
	Port    int
	Metrics string
	// Health serves /healthz and /readyz.
	Health  string
	CertDir string
	cmd     *exec.Cmd
	unmount func()
}

// Pid is the process ID of r's credgate serve, 0 once it has exited.
func (r *Replica) Pid() int {
	if r.cmd == nil || r.cmd.Process == nil || r.cmd.ProcessState != nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// StartReplica starts a further replica; StopReplica stops it.
func (c *Cluster) StartReplica(ctx context.Context, name string) (*Replica, error) {
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(c.WorkDir, name, "certs")
	unmount := c.mountSecretInto(ctx, dir)
	r, err := c.startReplica(ctx, name, port, dir, filepath.Join(c.WorkDir, name, "audit.log"))
	if err != nil {
		unmount()
		return nil, err
	}
	r.unmount = unmount
	return r, nil
}

// StopReplica stops r.
func (c *Cluster) StopReplica(r *Replica) {
	stop(r.cmd)
	if r.unmount != nil {
		r.unmount()
	}
}

func (c *Cluster) startReplica(ctx context.Context, name string, port int, certDir, auditPath string) (*Replica, error) {
	mport, err := FreePort()
	if err != nil {
		return nil, err
	}
	hport, err := FreePort()
	if err != nil {
		return nil, err
	}
	health := "127.0.0.1:" + strconv.Itoa(hport)
	r := &Replica{Port: port, Metrics: "127.0.0.1:" + strconv.Itoa(mport), Health: health, CertDir: certDir}
	args := append([]string{"serve",
		"--kubeconfig=" + c.servingKubeconfig, "--cert-dir=" + certDir, "--host=127.0.0.1", "--port=" + strconv.Itoa(port),
		"--metrics-bind-address=" + r.Metrics, "--health-probe-bind-address=" + health,
		"--audit-file=" + auditPath, "--namespace=" + Namespace,
		"--policy-dir=" + c.PolicyDir, "--policy-reload-interval=500ms",
		// Self-managed certificates, renewed as Options say.
		"--cert-management=self", "--cert-secret=" + CertSecret.Namespace + "/" + CertSecret.Name,
		"--cert-dns-name=localhost", "--cert-validity=" + c.o.CertValidity.String(),
		"--cert-renew-before=" + c.o.RenewBefore.String(), "--cert-check-interval=2s",
		// The Service of test/cluster polls readiness every 100ms.
		"--shutdown-delay=1s"}, c.o.CredgateArgs...)
	r.cmd, err = c.start(name, filepath.Join(c.Bin, "credgate"), args...)
	if err != nil {
		return nil, err
	}
	if err := c.waitReady(ctx, name, health); err != nil {
		stop(r.cmd)
		return nil, err
	}
	return r, waitTLS(ctx, port)
}

// waitReady waits until the process name answers /readyz at health.
func (c *Cluster) waitReady(ctx context.Context, name, health string) error {
	ready := func(context.Context) (bool, error) {
		res, err := http.Get("http://" + health + "/readyz")
		if err != nil {
			return false, nil
		}
		_ = res.Body.Close()
		return res.StatusCode == http.StatusOK, nil
	}
	if wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, ready) == nil {
		return nil
	}
	log, _ := os.ReadFile(filepath.Join(c.WorkDir, name+".log"))
	return fmt.Errorf("%s did not become ready in 60s:\n%s", name, log)
}

// waitTLS waits until port accepts TLS connections.
func waitTLS(ctx context.Context, port int) error {
	d := &tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}} //nolint:gosec // only probes that the port serves TLS
	var closeErr error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 5*time.Second, true, func(ctx context.Context) (bool, error) {
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			return false, nil
		}
		closeErr = conn.Close()
		return true, nil
	})
	if err != nil {
		return errors.New("credgate's webhook port does not serve TLS")
	}
	return closeErr
}

// installWebhooks creates the webhook configurations of manifests/webhook, each pointed at
// the local credgate (its service reference replaced by a URL with the same path). Their CA
// bundle is credgate's to fill in.
func (c *Cluster) installWebhooks(ctx context.Context) error {
	docs, err := Documents(filepath.Join(c.Root, "manifests", "webhook", "webhooks.yaml"))
	if err != nil {
		return err
	}
	base := "https://localhost:" + strconv.Itoa(c.Port)
	point := func(cc *admissionregistrationv1.WebhookClientConfig) {
		u := base + *cc.Service.Path
		cc.URL, cc.Service = &u, nil
	}
	for _, doc := range docs {
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
		if err := c.Client.Create(ctx, obj); err != nil {
			return fmt.Errorf("create %s: %w", meta.Kind, err)
		}
	}
	return nil
}

// FreePort returns a TCP port on 127.0.0.1 that nothing listens on now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}
