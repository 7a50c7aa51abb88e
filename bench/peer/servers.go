package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/bench/internal/benchenv"
	"github.com/credgate/credgate/certs"
	"github.com/credgate/credgate/test/cluster"
)

// createObjects creates the samples' namespace, the Job job that their pods say created them
// (when not empty; suspended: it creates no pods itself) and creds in the cluster, and returns
// the Credentials as the API server stored them (UID, resourceVersion, generation: what
// credgate serve's informer holds and its policy input carries), with the namespace's labels.
func createObjects(ctx context.Context, c client.Client, job string, creds []*v1alpha1.Credential) ([]*v1alpha1.Credential, map[string]string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}
	if err := c.Create(ctx, ns); err != nil {
		return nil, nil, fmt.Errorf("create namespace %s: %w", namespace, err)
	}
	if job != "" {
		j := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: job, Namespace: namespace}, Spec: batchv1.JobSpec{
			Suspend: new(true),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "trainer", Image: "ghcr.io/example/trainer:1.4.0"}}}},
		}}
		if err := c.Create(ctx, j); err != nil {
			return nil, nil, fmt.Errorf("create job %s: %w", job, err)
		}
	}
	stored := make([]*v1alpha1.Credential, 0, len(creds))
	for _, cr := range creds {
		cr = cr.DeepCopy()
		if err := c.Create(ctx, cr); err != nil {
			return nil, nil, fmt.Errorf("create credential %s: %w", cr.Name, err)
		}
		got := &v1alpha1.Credential{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(cr), got); err != nil {
			return nil, nil, err
		}
		got.ManagedFields = nil // credgate's informer strips them
		stored = append(stored, got)
	}
	if err := c.Get(ctx, client.ObjectKeyFromObject(ns), ns); err != nil {
		return nil, nil, err
	}
	return stored, ns.Labels, nil
}

// opaServer is an `opa run --server` process serving HTTPS on 127.0.0.1.
type opaServer struct {
	URL     string
	CA      *x509.CertPool
	Version string
	cmd     *exec.Cmd
	logPath string
}

// startOPA runs bin as an OPA server over TLS (a throwaway CA and certificate for localhost,
// written to work) with the modules files, logging errors only to work/opa.log, and waits
// until it is healthy. Request logging is off: OPA logs every request at its default level,
// which credgate does not (it logs refusals only).
func startOPA(ctx context.Context, bin, work string, files []string) (*opaServer, error) {
	version, err := opaVersion(ctx, bin)
	if err != nil {
		return nil, err
	}
	b, err := certs.Generate(certs.Options{Hosts: []string{"localhost", "127.0.0.1"}})
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(work, "opa-certs")
	if err := b.Write(dir); err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(b.CACert)
	port, err := cluster.FreePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	args := append([]string{"run", "--server", "--addr=" + addr,
		"--tls-cert-file=" + filepath.Join(dir, "tls.crt"), "--tls-private-key-file=" + filepath.Join(dir, "tls.key"),
		"--log-level=error", "--skip-version-check"}, files...)
	s := &opaServer{URL: "https://" + addr, CA: pool, Version: version, logPath: filepath.Join(work, "opa.log")}
	log, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	defer log.Close()
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	hc := newClient(pool, false)
	for deadline := time.Now().Add(30 * time.Second); ; {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/health", nil)
		res, err := hc.Do(req)
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.stop()
			out, _ := os.ReadFile(s.logPath)
			return nil, fmt.Errorf("OPA did not become healthy in 30s (%v):\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop stops the OPA server: an interrupt, then a kill if it has not exited in 10s.
func (s *opaServer) stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// pid is the OPA server's process id.
func (s *opaServer) pid() int { return s.cmd.Process.Pid }

// opaVersion runs `bin version` and checks that it is the OPA credgate is built with.
func opaVersion(ctx context.Context, bin string) (string, error) {
	out, err := exec.CommandContext(ctx, bin, "version").Output()
	if err != nil {
		return "", fmt.Errorf("%s version: %w (make bench-peer builds it)", bin, err)
	}
	var version string
	for sc := bufio.NewScanner(bytes.NewReader(out)); sc.Scan(); {
		if v, ok := strings.CutPrefix(sc.Text(), "Version: "); ok {
			version = "v" + strings.TrimSpace(v)
		}
	}
	if want := libraryVersion(); version != want {
		return "", fmt.Errorf("%s is OPA %q; credgate is built with OPA %s: rebuild it (make bench-peer)", bin, version, want)
	}
	return version, nil
}

// libraryVersion is the version of the OPA module this program, like credgate, is built with.
func libraryVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "github.com/open-policy-agent/opa" {
				return m.Version
			}
		}
	}
	return "(unknown)"
}

// credgatePid finds the credgate serve process serving the webhook port: cluster.Start does
// not say, and its CPU time is what each request cost it. 0 when not found.
func credgatePid(port int) int {
	pid, _, _ := benchenv.FindServe("--port=" + strconv.Itoa(port))
	return pid
}

// cpuTime is the user and system CPU time process pid has used so far; 0 when unknown.
func cpuTime(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// The fields after the command (in parentheses, which may hold spaces): utime and stime
	// are the 14th and 15th fields of the line, in clock ticks (100 a second on Linux).
	_, rest, ok := bytes.Cut(b, []byte(") "))
	if !ok {
		return 0
	}
	f := strings.Fields(string(rest))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// machineBusy is the CPU time every CPU of the machine has spent busy so far (user, nice,
// system, interrupts, steal: /proc/stat); 0 when unknown.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system (idle iowait) irq softirq steal
		n, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += n
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// usage is where the machine's CPU time went over a stretch of time.
type usage struct {
	wall, busy, credgate, opa, generator time.Duration
	credgatePid, opaPid                  int
	start                                time.Time
}

// startUsage starts measuring the machine's CPU time and the servers'.
func startUsage(credgatePid, opaPid int) *usage {
	return &usage{start: time.Now(), busy: machineBusy(), credgate: cpuTime(credgatePid), opa: cpuTime(opaPid),
		generator: cpuTime(os.Getpid()), credgatePid: credgatePid, opaPid: opaPid}
}

// stop turns u into the CPU time used since it started.
func (u *usage) stop() {
	u.wall = time.Since(u.start)
	u.busy = machineBusy() - u.busy
	u.credgate = cpuTime(u.credgatePid) - u.credgate
	u.opa = cpuTime(u.opaPid) - u.opa
	u.generator = cpuTime(os.Getpid()) - u.generator
}

// others stops u and returns the share of the machine's CPU time since it started that
// neither server nor this process used.
func (u *usage) others() float64 {
	u.stop()
	avail := float64(u.wall) * float64(runtime.NumCPU())
	if avail == 0 || u.busy == 0 {
		return 0
	}
	return max(0, float64(u.busy-u.credgate-u.opa-u.generator)/avail)
}

// newClient returns an HTTP client with a single keep-alive connection of its own, TLS to
// localhost verified against ca, speaking HTTP/2 (as the API server calls webhooks) or, with
// http1, HTTP/1.1 only.
func newClient(ca *x509.CertPool, http1 bool) *http.Client {
	var p http.Protocols
	if http1 {
		p.SetHTTP1(true)
	} else {
		p.SetHTTP2(true)
	}
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: ca, ServerName: "localhost", MinVersion: tls.VersionTLS12},
		Protocols:           &p,
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		DisableCompression:  true,
		IdleConnTimeout:     time.Minute,
	}}
}

// startCluster starts the control plane with credgate serve (package test/cluster), given
// flags besides the cluster's, its progress on stderr.
func startCluster(ctx context.Context, root string, flags []string) (*cluster.Cluster, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	return cluster.Start(ctx, cluster.Options{Root: abs, Progress: os.Stderr, CredgateArgs: flags})
}
