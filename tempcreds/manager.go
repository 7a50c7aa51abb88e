package tempcreds

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/credgate/credgate/api/v1alpha1"
)

// LeaderElectionID names the Lease of the refresher replica that works.
const LeaderElectionID = "credgate-refresher-leader"

// ManagerOptions configure the refresher's process (credgate refresher).
type ManagerOptions struct {
	// Namespace is the refresher's own namespace: its Lease and the source Secrets. It is
	// the only namespace whose Secrets the refresher reads (and caches).
	Namespace string
	// MetricsAddr and HealthAddr serve /metrics and /healthz, /readyz.
	MetricsAddr, HealthAddr string
	// MaxDuration, if set, caps every AWS session's lifetime.
	MaxDuration time.Duration
	// MaxGCPLifetime, if set, caps every GCP access token's lifetime.
	MaxGCPLifetime time.Duration
	// LeaderElection elects one replica to work (on by default in the manifests).
	LeaderElection bool
}

// NewManager returns a manager running the Refresher under o, with Events from newRecorder:
// its cache holds Credentials and Namespaces cluster-wide and the Secrets of o.Namespace only.
func NewManager(cfg *rest.Config, scheme *runtime.Scheme, o ManagerOptions, log logr.Logger,
	newRecorder func(manager.Manager) (events.EventRecorder, error)) (manager.Manager, error) {
	if o.Namespace == "" {
		return nil, errors.New("the refresher needs its namespace")
	}
	mgr, err := manager.New(cfg, manager.Options{
		Scheme:                  scheme,
		Logger:                  log,
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress:  o.HealthAddr,
		LeaderElection:          o.LeaderElection,
		LeaderElectionID:        LeaderElectionID,
		LeaderElectionNamespace: o.Namespace,
		// A replica that stops hands the lease over at once instead of letting it expire.
		LeaderElectionReleaseOnCancel: true,
		Cache: cache.Options{
			DefaultTransform: cache.TransformStripManagedFields(),
			ByObject: map[client.Object]cache.ByObject{
				&corev1.Secret{}: {Namespaces: map[string]cache.Config{o.Namespace: {}}},
			},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	metrics, err := NewMetrics(crmetrics.Registry)
	if err != nil {
		return nil, err
	}
	recorder, err := newRecorder(mgr)
	if err != nil {
		return nil, err
	}
	r := &Refresher{Client: mgr.GetClient(), Reader: mgr.GetClient(), Namespace: o.Namespace, MaxDuration: o.MaxDuration,
		MaxGCPLifetime: o.MaxGCPLifetime, Log: log.WithName("refresher"), Metrics: metrics, Events: recorder}
	if err := r.SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("add the credential refresher: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, fmt.Errorf("add health check: %w", err)
	}
	inf, err := mgr.GetCache().GetInformer(context.Background(), &v1alpha1.Credential{})
	if err != nil {
		return nil, fmt.Errorf("create credential informer: %w", err)
	}
	ready := func(*http.Request) error {
		if !inf.HasSynced() {
			return errors.New("credential informer has not synced")
		}
		return nil
	}
	if err := mgr.AddReadyzCheck("credential-cache", ready); err != nil {
		return nil, fmt.Errorf("add readiness check: %w", err)
	}
	return mgr, nil
}
