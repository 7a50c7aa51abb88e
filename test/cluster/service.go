package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Service stands in for the Kubernetes Service in front of credgate's replicas, and for
// kube-proxy: a TCP proxy on 127.0.0.1 that sends each new connection to the next of its
// backends whose /readyz answers 200, as endpoints drop a pod that is not ready. It polls
// every ServicePollInterval (an endpoints update takes about as long in a small cluster). A
// connection stays with the backend it was sent to until one side closes it, as through
// kube-proxy; with no ready backend a connection is closed at once.
type Service struct {
	Port int

	l        net.Listener
	mu       sync.Mutex
	backends []*backend
	next     int
	stopPoll context.CancelFunc
	wg       sync.WaitGroup

	// Refused counts connections closed for want of a ready backend.
	Refused atomic.Int64
}

// ServicePollInterval is how often a Service checks its backends' readiness.
const ServicePollInterval = 100 * time.Millisecond

type backend struct {
	port   int
	health string
	ready  atomic.Bool
}

// StartService starts a Service on a free port with no backends.
func StartService(ctx context.Context) (*Service, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("service: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Service{Port: l.Addr().(*net.TCPAddr).Port, l: l, stopPoll: cancel}
	s.wg.Add(2)
	go s.accept()
	go s.poll(ctx)
	return s, nil
}

// Add puts the replica r behind the Service (ready once its /readyz says so).
func (s *Service) Add(r *Replica) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.backends = append(s.backends, &backend{port: r.Port, health: r.Health})
}

// Remove takes the replica r from behind the Service, as a deleted pod's endpoint goes.
func (s *Service) Remove(r *Replica) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, b := range s.backends {
		if b.port == r.Port {
			s.backends = append(s.backends[:i], s.backends[i+1:]...)
			return
		}
	}
}

// Ready reports how many backends are ready.
func (s *Service) Ready() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, b := range s.backends {
		if b.ready.Load() {
			n++
		}
	}
	return n
}

// Close stops accepting connections and polling; connections open stay until they end.
func (s *Service) Close() {
	s.stopPoll()
	_ = s.l.Close()
	s.wg.Wait()
}

func (s *Service) poll(ctx context.Context) {
	defer s.wg.Done()
	hc := &http.Client{Timeout: ServicePollInterval}
	t := time.NewTicker(ServicePollInterval)
	defer t.Stop()
	for {
		s.mu.Lock()
		bs := append([]*backend(nil), s.backends...)
		s.mu.Unlock()
		for _, b := range bs {
			res, err := hc.Get("http://" + b.health + "/readyz")
			ok := err == nil && res.StatusCode == http.StatusOK
			if err == nil {
				_, _ = io.Copy(io.Discard, res.Body)
				_ = res.Body.Close()
			}
			b.ready.Store(ok)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pick returns the port of the next ready backend, or false.
func (s *Service) pick() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range s.backends {
		b := s.backends[s.next%len(s.backends)]
		s.next++
		if b.ready.Load() {
			return b.port, true
		}
	}
	return 0, false
}

func (s *Service) accept() {
	defer s.wg.Done()
	for {
		conn, err := s.l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		port, ok := s.pick()
		if !ok {
			s.Refused.Add(1)
			_ = conn.Close()
			continue
		}
		go proxy(conn, port)
	}
}

// proxy copies between conn and the backend on port until either side closes.
func proxy(conn net.Conn, port int) {
	defer func() { _ = conn.Close() }()
	up, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return
	}
	defer func() { _ = up.Close() }()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, conn); closeWrite(up); done <- struct{}{} }()
	go func() { _, _ = io.Copy(conn, up); closeWrite(conn); done <- struct{}{} }()
	<-done
	<-done
}

func closeWrite(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

// PointWebhooks points every webhook of credgate's configurations at port on localhost (a
// Service's, or Cluster.Port again), keeping each path.
func (c *Cluster) PointWebhooks(ctx context.Context, port int) error {
	base := "https://localhost:" + strconv.Itoa(port)
	repoint := func(cc *admissionregistrationv1.WebhookClientConfig) error {
		u, err := url.Parse(*cc.URL)
		if err != nil {
			return err
		}
		s := base + u.Path
		cc.URL = &s
		return nil
	}
	// credgate writes the CA bundle into the same objects: retry on a conflict.
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var m admissionregistrationv1.MutatingWebhookConfiguration
		if err := c.Client.Get(ctx, client.ObjectKey{Name: "credgate"}, &m); err != nil {
			return err
		}
		for i := range m.Webhooks {
			if err := repoint(&m.Webhooks[i].ClientConfig); err != nil {
				return err
			}
		}
		return c.Client.Update(ctx, &m)
	}); err != nil {
		return fmt.Errorf("point the mutating webhooks at port %d: %w", port, err)
	}
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var v admissionregistrationv1.ValidatingWebhookConfiguration
		if err := c.Client.Get(ctx, client.ObjectKey{Name: "credgate"}, &v); err != nil {
			return err
		}
		for i := range v.Webhooks {
			if err := repoint(&v.Webhooks[i].ClientConfig); err != nil {
				return err
			}
		}
		return c.Client.Update(ctx, &v)
	}); err != nil {
		return fmt.Errorf("point the validating webhooks at port %d: %w", port, err)
	}
	return nil
}

// SignalReplica sends sig to r's process and returns at once.
func (c *Cluster) SignalReplica(r *Replica, sig os.Signal) error { return r.cmd.Process.Signal(sig) }

// WaitReplica waits until r's process exits (after SignalReplica), at most d, and releases
// its certificate mount; it returns the process's exit error, or an error if it outlived d.
func (c *Cluster) WaitReplica(r *Replica, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- r.cmd.Wait() }()
	defer func() {
		if r.unmount != nil {
			r.unmount()
			r.unmount = nil
		}
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		_ = r.cmd.Process.Kill()
		return fmt.Errorf("replica still running %s after the signal: killed (%w)", d, <-done)
	}
}

// StartBehindService starts a Service with n new replicas of credgate serve behind it (named
// prefix-0, prefix-1, …), waits until all of them are ready, and points the webhook
// configurations at it. stop stops the replicas and the Service and points the webhooks back at
// the cluster's own credgate serve.
func (c *Cluster) StartBehindService(ctx context.Context, prefix string, n int) (svc *Service, replicas []*Replica, stop func() error, err error) {
	svc, err = StartService(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	stop = func() error {
		for _, r := range replicas {
			c.StopReplica(r)
		}
		svc.Close()
		return c.PointWebhooks(context.WithoutCancel(ctx), c.Port)
	}
	fail := func(err error) (*Service, []*Replica, func() error, error) {
		_ = stop()
		return nil, nil, nil, err
	}
	for i := range n {
		r, err := c.StartReplica(ctx, fmt.Sprintf("%s-%d", prefix, i))
		if err != nil {
			return fail(err)
		}
		svc.Add(r)
		replicas = append(replicas, r)
	}
	ready := func(context.Context) (bool, error) { return svc.Ready() >= n, nil }
	if err := wait.PollUntilContextTimeout(ctx, ServicePollInterval, 60*time.Second, true, ready); err != nil {
		return fail(fmt.Errorf("%d of %d replicas ready behind the service after 60s", svc.Ready(), n))
	}
	if err := c.PointWebhooks(ctx, svc.Port); err != nil {
		return fail(err)
	}
	return svc, replicas, stop, nil
}

// Running reports whether r's credgate serve is still running.
func (r *Replica) Running() bool { return running(r.cmd) }

// CredgateRunning reports whether the cluster's credgate serve is still running.
func (c *Cluster) CredgateRunning() bool { return running(c.credgate) }

// RefresherRunning reports whether the cluster's credgate refresher is still running.
func (c *Cluster) RefresherRunning() bool { return running(c.refresher) }

// running reports whether cmd's process is running: started, not exited (a process that
// exited and was not waited for is a zombie, state Z in /proc).
func running(cmd *exec.Cmd) bool {
	if cmd == nil || cmd.Process == nil || cmd.ProcessState != nil {
		return false
	}
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(cmd.Process.Pid), "stat"))
	if err != nil {
		return false
	}
	// pid (comm) state ...: comm may hold spaces and parentheses; the state follows the last ")".
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && s[i+2] != 'Z'
}
