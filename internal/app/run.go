package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// DefaultShutdownDelay is how long credgate serve keeps serving, unready, after SIGTERM: time
// for the endpoints controller and kube-proxy (or the cloud's load balancer) to stop sending it
// connections.
const DefaultShutdownDelay = 5 * time.Second

// Run starts mgr and runs it until ctx is done; then, for delay, its readiness check
// "shutdown" fails while it keeps serving, so that the replica leaves the Service's endpoints
// before its listener closes, and the manager stops: the webhook server drains the requests
// in flight (the manager's graceful shutdown timeout, 30s) and the process exits. Without the
// delay, a request sent in the moment between SIGTERM and the endpoints' update would meet a
// closed port, and fail its admission (failurePolicy: Fail).
func Run(ctx context.Context, mgr manager.Manager, delay time.Duration, log logr.Logger) error {
	var stopping atomic.Bool
	if err := mgr.AddReadyzCheck("shutdown", func(*http.Request) error {
		if stopping.Load() {
			return errors.New("shutting down")
		}
		return nil
	}); err != nil {
		return fmt.Errorf("add readiness check: %w", err)
	}
	run, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	go func() {
		select {
		case <-run.Done():
			return
		case <-ctx.Done():
		}
		stopping.Store(true)
		log.Info("stopping: not ready any more, serving admissions for the shutdown delay", "delay", delay)
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-run.Done():
		}
		log.Info("stopping: draining the requests in flight")
		stop()
	}()
	return mgr.Start(run)
}
