package app

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"time"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"
)

// certifiedServer starts the webhook server once its certificate files exist: with
// self-managed certificates the first ones appear only after the leader has written the Secret
// and the kubelet has mounted it. From then on the server reloads them when they change.
type certifiedServer struct {
	crwebhook.Server
	certDir string
	log     logr.Logger
}

// Start implements manager.Runnable.
func (s *certifiedServer) Start(ctx context.Context) error {
	for logged := false; ; logged = true {
		_, certErr := os.Stat(filepath.Join(s.certDir, "tls.crt"))
		_, keyErr := os.Stat(filepath.Join(s.certDir, "tls.key"))
		if certErr == nil && keyErr == nil {
			return s.Server.Start(ctx)
		}
		if !logged {
			s.log.Info("waiting for the serving certificate", "certDir", s.certDir)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every replica serves.
func (s *certifiedServer) NeedLeaderElection() bool { return false }

// profiling serves Go's profile handlers on addr until ctx ends.
func profiling(addr string) manager.RunnableFunc {
	return func(ctx context.Context) error {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		go func() {
			<-ctx.Done()
			_ = srv.Close()
		}()
		if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve profiles on %s: %w", addr, err)
		}
		return nil
	}
}
