package app

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/audit"
	"github.com/credgate/credgate/certs"
	"github.com/credgate/credgate/credential"
	"github.com/credgate/credgate/policies"
	"github.com/credgate/credgate/review"
	"github.com/credgate/credgate/webhook"
)

// Options configure credgate serve.
type Options struct {
	// CertDir holds tls.crt and tls.key; they are reloaded when they change.
	CertDir string
	// Host and Port are where the HTTPS webhook server listens.
	Host string
	Port int
	// MetricsAddr serves Prometheus metrics ("0" disables).
	MetricsAddr string
	// ProfilingAddr, when set, serves Go's profiles (net/http/pprof) under /debug/pprof/ there:
	// a listener of its own, meant for loopback (it has no authentication).
	ProfilingAddr string
	// HealthAddr serves /healthz and /readyz.
	HealthAddr string
	// PolicyDir holds extra .rego policies and data files, reloaded every PolicyReload.
	PolicyDir    string
	PolicyReload time.Duration
	// ReusedDecisions bounds the decisions kept for identical admissions to reuse
	// (review.Decisions); 0 keeps none.
	ReusedDecisions int
	// Enforcement maps rule ids to actions.
	Enforcement policies.Enforcement
	// Audit configures the audit records.
	Audit AuditOptions
	// SelfManagedCerts, when set, has credgate keep its own serving certificate in a Secret
	// (one replica, the elected leader, rotates it); nil reads whatever CertDir holds
	// (cert-manager, credgate certs).
	SelfManagedCerts *certs.SelfManaged
	// Namespace is credgate's own namespace: the leader-election Lease of certificate
	// rotation.
	Namespace string
}

// AuditOptions configure the audit records of refused, warned and audited admissions.
type AuditOptions struct {
	// File is the JSON-lines file records are appended to ("" for none), rotated at MaxBytes
	// and keeping MaxBackups old files.
	File       string
	MaxBytes   int64
	MaxBackups int
	// Stdout also writes every record to Stdout, for kubectl logs.
	Stdout io.Writer
	// Allowed also records admissions that found nothing wrong.
	Allowed bool
	// OnError is what an admission does when its record cannot be written.
	OnError audit.OnError
}

// LeaderElectionID names the Lease of the replica that does the background work.
const LeaderElectionID = "credgate-leader"

// NewScheme returns a scheme with the built-in kinds and the credgate.dev API.
func NewScheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("add client-go types to scheme: %w", err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, fmt.Errorf("add credgate.dev types to scheme: %w", err)
	}
	return s, nil
}

// NewManager builds the controller-runtime manager of credgate serve: the webhook server with
// package webhook's handlers, informers on Credentials and Namespaces (readiness waits for
// them and for the policies), the policy watcher and the CredentialPolicy status, certificate
// rotation on the elected replica when certificates are self-managed, audit, Events, health
// and metrics. Run runs it.
func NewManager(ctx context.Context, cfg *rest.Config, o Options, log logr.Logger) (manager.Manager, error) {
	scheme, err := NewScheme()
	if err != nil {
		return nil, err
	}
	mo := manager.Options{
		Scheme:                 scheme,
		Logger:                 log,
		Metrics:                metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress: o.HealthAddr,
		Cache: cache.Options{
			DefaultTransform: cache.TransformStripManagedFields(),
			// Credentials are only read, never modified, on the admission path: sharing the
			// cached object saves a deep copy per credential per request. The informers keep
			// only what admission reads (trimCredential, trimNamespace).
			ByObject: map[client.Object]cache.ByObject{
				&v1alpha1.Credential{}: {UnsafeDisableDeepCopy: new(true), Transform: trimCredential},
				&corev1.Namespace{}:    {UnsafeDisableDeepCopy: new(true), Transform: trimNamespace},
			},
		},
	}
	mgr, err := manager.New(cfg, mo)
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	if o.ProfilingAddr != "" {
		if err := mgr.Add(everyReplica(profiling(o.ProfilingAddr))); err != nil {
			return nil, fmt.Errorf("add profiling server: %w", err)
		}
	}
	// The manager's own webhook server is never asked for: this one starts once its
	// certificate files exist.
	srv := crwebhook.NewServer(crwebhook.Options{Host: o.Host, Port: o.Port, CertDir: o.CertDir})
	if err := mgr.Add(&certifiedServer{Server: srv, certDir: o.CertDir, log: log}); err != nil {
		return nil, fmt.Errorf("add webhook server: %w", err)
	}

	// Start the Credential informer with the manager, not on the first admission request.
	inf, err := mgr.GetCache().GetInformer(ctx, &v1alpha1.Credential{})
	if err != nil {
		return nil, fmt.Errorf("create credential informer: %w", err)
	}
	engine, status, err := newPolicyEngine(ctx, mgr, o, log)
	if err != nil {
		return nil, err
	}
	if o.SelfManagedCerts != nil {
		// Certificate rotation and the CredentialPolicy status run on one replica, the
		// elected leader; every replica serves.
		leader := func(m manager.Manager, term int) error {
			// Controller names are unique in a process: each term's rotator has its own.
			rotation := *o.SelfManagedCerts
			if term > 1 {
				rotation.ControllerName = fmt.Sprintf("cert-rotator-term-%d", term)
			}
			if err := rotation.Add(m); err != nil {
				return err
			}
			return m.Add(status)
		}
		terms := manager.Options{Scheme: scheme, Cache: cache.Options{DefaultTransform: cache.TransformStripManagedFields()}}
		if err := mgr.Add(newLeaderTerms(cfg, terms, o.Namespace, LeaderElectionID, leader, log.WithName("leader"))); err != nil {
			return nil, fmt.Errorf("add the elected replica's work: %w", err)
		}
	} else if err := mgr.Add(everyReplica(status.Start)); err != nil {
		return nil, fmt.Errorf("add policy status writer: %w", err)
	}
	store := &credential.ClientStore{Cache: mgr.GetCache(), Live: mgr.GetAPIReader(),
		LiveLimit: rate.NewLimiter(credential.DefaultLiveRate, credential.DefaultLiveBurst)}
	nsInf, err := mgr.GetCache().GetInformer(ctx, &corev1.Namespace{})
	if err != nil {
		return nil, fmt.Errorf("create namespace informer: %w", err)
	}
	namespaces := &clientNamespaces{cache: mgr.GetCache(), live: mgr.GetAPIReader()}
	reviewer := &review.Reviewer{Store: store, Namespaces: namespaces, Policy: engine, Enforcement: o.Enforcement,
		Values: &policies.ValueCache{}}
	auditor, err := newAuditor(mgr, o.Audit)
	if err != nil {
		return nil, err
	}
	recorder, err := NewEventRecorder(mgr, cfg, scheme)
	if err != nil {
		return nil, err
	}
	if err := registerCertExpiry(crmetrics.Registry, o.CertDir); err != nil {
		return nil, err
	}
	metrics, err := webhook.NewMetrics(crmetrics.Registry)
	if err != nil {
		return nil, err
	}
	var decisions *review.Decisions
	if o.ReusedDecisions > 0 {
		decisions = review.NewDecisions(o.ReusedDecisions)
	}
	webhook.Handlers{Reviewer: reviewer, Audit: auditor, Owners: webhook.NewOwnerResolver(mgr.GetAPIReader()), Events: recorder,
		Metrics: metrics, Decisions: decisions, Log: log}.Register(srv)

	if err := mgr.Add(unservedKinds(mgr.GetRESTMapper(), log)); err != nil {
		return nil, fmt.Errorf("add the check of the kinds served: %w", err)
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, fmt.Errorf("add health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("webhook", srv.StartedChecker()); err != nil {
		return nil, fmt.Errorf("add readiness check: %w", err)
	}
	if err := mgr.AddReadyzCheck("credential-cache", synced("credential", inf.HasSynced)); err != nil {
		return nil, fmt.Errorf("add readiness check: %w", err)
	}
	if err := mgr.AddReadyzCheck("namespace-cache", synced("namespace", nsInf.HasSynced)); err != nil {
		return nil, fmt.Errorf("add readiness check: %w", err)
	}
	return mgr, nil
}

// newPolicyEngine compiles the policies — a broken policy directory at start is an error,
// there being no previous revision to keep serving — and adds their watcher to mgr, which
// serves the CredentialPolicies too. It returns the writer of their status, for the caller to
// run where it should: on the elected replica.
func newPolicyEngine(ctx context.Context, mgr manager.Manager, o Options, log logr.Logger) (*policies.Engine, *policyStatusWriter, error) {
	rev, err := policies.Load(ctx, o.PolicyDir)
	if err != nil {
		return nil, nil, fmt.Errorf("load policies: %w", err)
	}
	engine := policies.NewEngine(rev)
	metrics, err := policies.NewMetrics(crmetrics.Registry)
	if err != nil {
		return nil, nil, err
	}
	engine.Metrics = metrics
	metrics.Serving("", rev.ID())
	// The watcher serves the CredentialPolicies (and reloads --policy-dir): until it has
	// read them once, the replica is not ready — it would admit what they refuse.
	if _, err := mgr.GetCache().GetInformer(ctx, &v1alpha1.CredentialPolicy{}); err != nil {
		return nil, nil, fmt.Errorf("create credentialpolicy informer (is the CRD credentialpolicies.credgate.dev installed? An upgrade applies the new CRDs first): %w", err)
	}
	w := &policies.Watcher{Dir: o.PolicyDir, Objects: policyObjects(mgr.GetCache()), Interval: o.PolicyReload,
		Engine: engine, Metrics: metrics, Log: log.WithName("policies")}
	if err := mgr.Add(w); err != nil {
		return nil, nil, fmt.Errorf("add policy watcher: %w", err)
	}
	if err := mgr.AddReadyzCheck("policies", func(*http.Request) error { return w.Loaded() }); err != nil {
		return nil, nil, fmt.Errorf("add readiness check: %w", err)
	}
	status := &policyStatusWriter{watcher: w, client: mgr.GetClient(), reader: mgr.GetCache(), log: log.WithName("policies"), retry: 10 * time.Second}
	log.Info("policies loaded", "policyRevision", rev.ID(), "policyDir", o.PolicyDir)
	return engine, status, nil
}

// newAuditor opens the audit sinks o asks for; the file is closed when mgr stops.
func newAuditor(mgr manager.Manager, o AuditOptions) (*audit.Auditor, error) {
	metrics, err := audit.NewMetrics(crmetrics.Registry)
	if err != nil {
		return nil, err
	}
	a := &audit.Auditor{Allowed: o.Allowed, OnError: o.OnError, Metrics: metrics}
	if o.File != "" {
		f, err := audit.OpenFile(o.File, audit.FileOptions{MaxBytes: o.MaxBytes, MaxBackups: o.MaxBackups})
		if err != nil {
			return nil, err
		}
		a.Sinks = append(a.Sinks, f)
		closer := everyReplica(func(ctx context.Context) error {
			<-ctx.Done()
			return f.Close()
		})
		if err := mgr.Add(closer); err != nil {
			return nil, fmt.Errorf("add audit file closer: %w", err)
		}
	}
	if o.Stdout != nil {
		a.Sinks = append(a.Sinks, audit.NewWriterSink(o.Stdout))
	}
	return a, nil
}

// NewEventRecorder returns an events.k8s.io recorder whose broadcaster runs with mgr: it
// aggregates identical Events into a series (one create, then one patch, however many times a
// refusal repeats).
func NewEventRecorder(mgr manager.Manager, cfg *rest.Config, scheme *runtime.Scheme) (events.EventRecorder, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create events client: %w", err)
	}
	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	run := everyReplica(func(ctx context.Context) error {
		if err := b.StartRecordingToSinkWithContext(ctx); err != nil {
			return fmt.Errorf("start event recording: %w", err)
		}
		<-ctx.Done()
		b.Shutdown()
		return nil
	})
	if err := mgr.Add(run); err != nil {
		return nil, fmt.Errorf("add event broadcaster: %w", err)
	}
	return b.NewRecorder(scheme, "credgate"), nil
}

// everyReplica is a runnable that runs on every replica, leader or not: a manager starts a
// plain RunnableFunc on the elected leader only, and a replica that serves admissions must
// record its refusals' Events and close its audit file whether it leads or not.
type everyReplica func(context.Context) error

// Start implements manager.Runnable.
func (f everyReplica) Start(ctx context.Context) error { return f(ctx) }

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (everyReplica) NeedLeaderElection() bool { return false }

// synced is the readiness check of the informer of kind: ready once it has synced.
func synced(kind string, inf toolscache.InformerSynced) healthz.Checker {
	return func(*http.Request) error {
		if !inf() {
			return fmt.Errorf("%s informer has not synced", kind)
		}
		return nil
	}
}
