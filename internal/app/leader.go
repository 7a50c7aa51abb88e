package app

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// leaderTerms runs the elected replica's work — certificate rotation, CredentialPolicy status —
// in terms, on every replica: each term is a manager of its own that campaigns for the Lease,
// works while it holds it, and ends when it loses it; the replica then campaigns again. A
// replica serves admissions throughout, leader or not.
//
// controller-runtime's manager exits when it loses its Lease, and for a process that also
// serves admissions that would turn an API server or etcd away for longer than the renew
// deadline (10s) into a restart of every replica that led during it — admissions in flight
// failed, caches cold — just when the control plane comes back.
type leaderTerms struct {
	cfg     *rest.Config
	options manager.Options
	// setup adds the work to the manager of term n (1, 2, …).
	setup func(mgr manager.Manager, n int) error
	// retry is the pause between a lost term and the next campaign.
	retry time.Duration
	log   logr.Logger
}

// newLeaderTerms returns the terms of the Lease id in namespace: the manager of each serves no
// metrics or probes of its own (the replica's manager does).
func newLeaderTerms(cfg *rest.Config, o manager.Options, namespace, id string, setup func(manager.Manager, int) error, log logr.Logger) *leaderTerms {
	o.LeaderElection, o.LeaderElectionID, o.LeaderElectionNamespace = true, id, namespace
	// A replica that stops hands the Lease over at once instead of letting it expire.
	o.LeaderElectionReleaseOnCancel = true
	o.Metrics = metricsserver.Options{BindAddress: "0"}
	o.HealthProbeBindAddress = "0"
	o.Logger = log
	return &leaderTerms{cfg: cfg, options: o, setup: setup, retry: 2 * time.Second, log: log}
}

// Start implements manager.Runnable: terms until ctx ends.
func (l *leaderTerms) Start(ctx context.Context) error {
	for n := 1; ; n++ {
		mgr, err := manager.New(l.cfg, l.options)
		if err != nil {
			return fmt.Errorf("create the leader's manager: %w", err)
		}
		if err := l.setup(mgr, n); err != nil {
			return err
		}
		err = mgr.Start(ctx)
		if ctx.Err() != nil {
			return nil
		}
		l.log.Info("the elected replica's term ended; serving on and campaigning again", "term", n, "reason", fmt.Sprint(err))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(l.retry):
		}
	}
}

// NeedLeaderElection implements manager.LeaderElectionRunnable: every replica campaigns.
func (*leaderTerms) NeedLeaderElection() bool { return false }
