package main

import (
	"fmt"

	"time"

	"github.com/go-logr/zapr"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/credgate/credgate/webhook"
)

type serveOptions struct {
	webhook.Options
	kubeconfig string
	verbosity  int
	policy     policyFlags
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
(a mounted ConfigMap), reloaded every --policy-reload-interval without a restart. A policy
that does not compile never replaces the one serving; it is logged and counted in
credgate_policy_reload_errors_total.

Endpoints: /mutate-v1-pod, /mutate-batch-v1-job, /mutate-batch-v1-cronjob and the matching
/validate-* paths on the webhook port; /healthz and /readyz on the health address; /metrics
on the metrics address.`,
		Example: `  # In a cluster (in-cluster config), certificates mounted at the default path
  credgate serve

  # Locally, against the cluster of your kubeconfig
  credgate serve --kubeconfig ~/.kube/config --cert-dir ./certs --port 9443`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVar(&o.CertDir, "cert-dir", "/var/run/secrets/credgate/serving-certs", "directory holding tls.crt and tls.key")
	f.StringVar(&o.Host, "host", "", "address the webhook server binds (default all)")
	f.IntVar(&o.Port, "port", 9443, "port of the HTTPS webhook server")
	f.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", `address of the metrics endpoint ("0" disables it)`)
	f.StringVar(&o.HealthAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints")
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster config, then $KUBECONFIG)")
	f.IntVarP(&o.verbosity, "verbosity", "v", 0, "log verbosity: 0 decisions, 1 every injection")
	f.DurationVar(&o.PolicyReload, "policy-reload-interval", 2*time.Second, "how often --policy-dir is checked for changes")
	o.policy.register(cmd, "directory of extra .rego policies and JSON/YAML data, reloaded on change")
	return cmd
}

func (o *serveOptions) run(cmd *cobra.Command) error {
	zl, err := newZap(o.verbosity)
	if err != nil {
		return err
	}
	defer func() { _ = zl.Sync() }()
	log := zapr.NewLogger(zl)
	ctrl.SetLogger(log)

	o.PolicyDir = o.policy.dir
	if o.Enforcement, err = o.policy.enforcement(); err != nil {
		return err
	}
	cfg, err := loadConfig(o.kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	mgr, err := webhook.NewManager(cmd.Context(), cfg, o.Options, log.WithName("webhook"))
	if err != nil {
		return err
	}
	log.Info("starting", "version", version, "port", o.Port, "certDir", o.CertDir)
	return mgr.Start(cmd.Context())
}

func newZap(verbosity int) (*zap.Logger, error) {
	c := zap.NewProductionConfig()
	c.Level = zap.NewAtomicLevelAt(zapcore.Level(-verbosity))
	c.Sampling = nil
	l, err := c.Build()
	if err != nil {
		return nil, fmt.Errorf("build logger: %w", err)
	}
	return l, nil
}

// loadConfig reads the kubeconfig file named, or else the in-cluster config, then $KUBECONFIG
// and ~/.kube/config.
func loadConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return ctrl.GetConfig()
}
