package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/zapr"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/credgate/credgate/audit"
	"github.com/credgate/credgate/certs"
	"github.com/credgate/credgate/internal/app"
	"github.com/credgate/credgate/review"
)

type serveOptions struct {
	app.Options
	kubeconfig   string
	verbosity    int
	policy       policyFlags
	auditStdout  bool
	auditMaxMiB  int
	auditOnError string
	certMode     string
	// shutdownDelay: how long to serve, unready, after SIGTERM.
	shutdownDelay time.Duration
	selfCerts     certs.SelfManaged
	certSecret    string
}

func newServeCommand() *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the admission webhook server",
		Long: `Serve runs credgate's mutating admission webhooks over HTTPS for Pods, batch/v1 Jobs and
CronJobs, reading Credentials through an informer cache. The serving certificate (tls.crt,
tls.key) is read from --cert-dir and reloaded when it changes.

Policies: the built-in rules, plus the .rego policies and JSON/YAML data of --policy-dir
(a mounted ConfigMap), reloaded every --policy-reload-interval without a restart. A revision
that does not load, compile, or evaluate cleanly on sample inputs and on the inputs this
replica saw recently never replaces the one serving; it is logged with its file and line and
counted in credgate_policy_reload_errors_total{reason}.

Certificates: --cert-management=external (the default) serves what --cert-dir holds
(cert-manager, credgate certs) and reloads it when it changes. --cert-management=self keeps
a CA and serving certificate in --cert-secret, renewed --cert-renew-before expiry by the elected
leader replica, with the CA bundle kept current in the webhook configurations named
--webhook-configuration; every replica mounts the Secret at --cert-dir and reloads it.

Audit: every refused, warned and audited admission is one JSON line, durable (fsynced) before
the webhook answers, in --audit-file (rotated at --audit-max-size MiB, keeping
--audit-max-backups old files) and/or on stdout (--audit-stdout, for kubectl logs | credgate
audit). If a record cannot be written, --audit-on-error=refuse (the default) fails the
admission; admit lets it through and counts credgate_audit_write_errors_total.

Temporary AWS credentials are minted by another process, credgate refresher, which runs
with its own service account: the server that faces the API server writes no Secret.

Endpoints: /mutate-v1-pod, /mutate-batch-v1-job, /mutate-batch-v1-cronjob and the matching
/validate-* paths on the webhook port; /healthz and /readyz on the health address; /metrics
on the metrics address.`,
		Example: `  # In a cluster (in-cluster config), certificates mounted at the default path
  credgate serve

  # Locally, against the cluster of your kubeconfig
  credgate serve --kubeconfig ~/.kube/config --cert-dir ./certs --port 9443

  # Audit to a file and to stdout
  credgate serve --audit-file /var/log/credgate/audit.log --audit-stdout`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVar(&o.CertDir, "cert-dir", "/var/run/secrets/credgate/serving-certs", "directory holding tls.crt and tls.key")
	f.StringVar(&o.Host, "host", "", "address the webhook server binds (default all)")
	f.IntVar(&o.Port, "port", 9443, "port of the HTTPS webhook server")
	f.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", `address of the metrics endpoint ("0" disables it)`)
	f.StringVar(&o.ProfilingAddr, "profiling-bind-address", "", `serve Go's CPU, heap and goroutine profiles under /debug/pprof/ at this address, e.g. 127.0.0.1:6060 (default none; no authentication: keep it on loopback)`)
	f.StringVar(&o.HealthAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster config, then $KUBECONFIG)")
	f.IntVarP(&o.verbosity, "verbosity", "v", 0, "log verbosity: 0 decisions, 1 every injection")
	f.DurationVar(&o.PolicyReload, "policy-reload-interval", 2*time.Second, "how often --policy-dir is checked for changes")
	f.DurationVar(&o.shutdownDelay, "shutdown-delay", app.DefaultShutdownDelay, "on SIGTERM, fail readiness at once but keep serving admissions this long, so that the Service stops sending requests before the server stops; then drain those in flight (keep it under the pod's terminationGracePeriodSeconds)")
	f.IntVar(&o.ReusedDecisions, "reused-decisions", review.DefaultMaxDecisions,
		"recent decisions kept for identical admissions (a Job's next pods) to reuse while all they read is unchanged (0: none)")
	o.policy.register(cmd, "directory of extra .rego policies and JSON/YAML data, reloaded on change")
	f.StringVar(&o.Audit.File, "audit-file", "", "append audit records to this JSON-lines file (default none)")
	f.IntVar(&o.auditMaxMiB, "audit-max-size", 100, "rotate --audit-file at this size, in MiB")
	f.IntVar(&o.Audit.MaxBackups, "audit-max-backups", 10, "rotated audit files to keep")
	f.BoolVar(&o.auditStdout, "audit-stdout", false, "also write audit records to stdout")
	f.BoolVar(&o.Audit.Allowed, "audit-allowed", false, "also record admissions that found nothing wrong (admission_allowed)")
	f.StringVar(&o.auditOnError, "audit-on-error", string(audit.Refuse), "when a record cannot be written: refuse (fail the admission) or admit (and count)")
	f.StringVar(&o.certMode, "cert-management", "external", "external: serve the certificate in --cert-dir; self: keep and rotate it in --cert-secret")
	f.StringVar(&o.certSecret, "cert-secret", "credgate-system/credgate-serving-cert", "namespace/name of the Secret of self-managed certificates")
	f.StringSliceVar(&o.selfCerts.DNSNames, "cert-dns-name", certs.ServiceDNSNames("credgate", "credgate-system"), "DNS names of the self-managed serving certificate (repeatable)")
	f.StringVar(&o.selfCerts.WebhookConfiguration, "webhook-configuration", "credgate", "name of credgate's mutating and validating webhook configurations, for their CA bundle")
	f.DurationVar(&o.selfCerts.ServingValidity, "cert-validity", 365*24*time.Hour, "validity of a self-managed serving certificate")
	f.DurationVar(&o.selfCerts.CAValidity, "ca-validity", 10*365*24*time.Hour, "validity of the self-managed CA")
	f.DurationVar(&o.selfCerts.RenewBefore, "cert-renew-before", 90*24*time.Hour, "renew self-managed certificates this long before they expire")
	f.DurationVar(&o.selfCerts.CheckInterval, "cert-check-interval", 12*time.Hour, "how often the leader checks the self-managed certificates")
	f.StringVar(&o.Namespace, "namespace", defaultNamespace("credgate-system"), "credgate's own namespace, $POD_NAMESPACE when set: the leader-election Lease of certificate rotation")
	return cmd
}

// defaultNamespace is the namespace the pod runs in (the downward API's POD_NAMESPACE), or
// fallback.
func defaultNamespace(fallback string) string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	return fallback
}

func (o *serveOptions) run(cmd *cobra.Command) error {
	log, sync := newLogger(o.verbosity, cmd.ErrOrStderr())
	defer sync()
	var err error

	o.PolicyDir = o.policy.dir
	if o.Audit.OnError, err = audit.ParseOnError(o.auditOnError); err != nil {
		return err
	}
	if o.auditMaxMiB <= 0 || o.Audit.MaxBackups <= 0 {
		return fmt.Errorf("--audit-max-size and --audit-max-backups must be positive")
	}
	o.Audit.MaxBytes = int64(o.auditMaxMiB) << 20
	switch o.certMode {
	case "external":
	case "self":
		ns, name, ok := strings.Cut(o.certSecret, "/")
		if !ok || ns == "" || name == "" {
			return fmt.Errorf("--cert-secret %q: want namespace/name", o.certSecret)
		}
		o.selfCerts.Secret = types.NamespacedName{Namespace: ns, Name: name}
		o.selfCerts.CertDir = o.CertDir
		o.SelfManagedCerts = &o.selfCerts
	default:
		return fmt.Errorf("--cert-management %q: use external or self", o.certMode)
	}
	if o.Namespace == "" {
		return fmt.Errorf("--namespace must not be empty")
	}
	if o.shutdownDelay < 0 || o.shutdownDelay > 5*time.Minute {
		return fmt.Errorf("--shutdown-delay %s: want 0 to 5m", o.shutdownDelay)
	}
	if o.auditStdout {
		o.Audit.Stdout = cmd.OutOrStdout()
	}
	if o.Enforcement, err = o.policy.enforcement(); err != nil {
		return err
	}
	cfg, err := loadConfig(o.kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	mgr, err := app.NewManager(cmd.Context(), cfg, o.Options, log.WithName("webhook"))
	if err != nil {
		return err
	}
	log.Info("starting", "version", version, "port", o.Port, "certDir", o.CertDir)
	return app.Run(cmd.Context(), mgr, o.shutdownDelay, log)
}

// newLogger builds the JSON logger of credgate's servers (zap behind logr), writing to w,
// and makes it controller-runtime's and klog's (client-go logs through klog: without this its
// lines would land as plain text between the JSON ones, and credgate audit reads them all);
// sync flushes it.
func newLogger(verbosity int, w io.Writer) (log logr.Logger, sync func()) {
	enc := zap.NewProductionEncoderConfig()
	enc.EncodeTime = zapcore.EpochTimeEncoder
	core := zapcore.NewCore(zapcore.NewJSONEncoder(enc), zapcore.AddSync(w), zap.NewAtomicLevelAt(zapcore.Level(-verbosity)))
	zl := zap.New(core, zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel))
	log = zapr.NewLogger(zl)
	ctrl.SetLogger(log)
	klog.SetLogger(log)
	return log, func() { _ = zl.Sync() }
}

// loadConfig reads the kubeconfig file named, or else the in-cluster config, then $KUBECONFIG
// and ~/.kube/config. Either way client-side rate limiting is off unless the file sets it, as
// controller-runtime's GetConfig leaves it (the API server's priority and fairness protects it):
// client-go's default of 5 requests a second would hold an admission that looks something up
// (an audit record's owner) for 200ms once a burst has used it up.
func loadConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		return ctrl.GetConfig()
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	if cfg.QPS == 0 {
		cfg.QPS = -1
	}
	return cfg, nil
}
