package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/credgate/credgate/internal/app"
	"github.com/credgate/credgate/tempcreds"
)

type refresherOptions struct {
	tempcreds.ManagerOptions
	kubeconfig string
	verbosity  int
}

func newRefresherCommand() *cobra.Command {
	o := &refresherOptions{}
	cmd := &cobra.Command{
		Use:   "refresher",
		Short: "Mint and refresh the temporary credentials of assumeRole and impersonation Credentials",
		Long: `Refresher keeps the temporary credentials of every Credential with spec.aws.mode
assumeRole or spec.gcp.mode impersonation, minted once per Credential with the long-lived
key of the source Secret it names:

  - assumeRole: STS AssumeRole of spec.aws.roleArn with the Credential's session policy; the
    credentials go to the Secret credgate-aws-<credential>, read by the SDKs through
    credential_process.
  - impersonation: IAM Credentials generateAccessToken for spec.gcp.serviceAccountEmail with
    its scopes; the access token goes to the Secret credgate-gcp-<credential>, read by gcloud
    through CLOUDSDK_AUTH_ACCESS_TOKEN_FILE.

Both are written to the Credential's namespace and minted again at about two thirds of their
lifetime. Replicas elect one leader (--leader-elect).

It runs apart from credgate serve, with its own service account: the admission server, which
faces the API server, can neither read a source Secret nor write any Secret. The refresher
reads Secrets in --namespace only (its own: the source Secrets live there) and writes
credgate-aws-* and credgate-gcp-* Secrets only in the namespaces the platform enabled with a
RoleBinding to the ClusterRole credgate-refresher-secrets.

A source is granted by the platform, never picked by a tenant: its Secret's annotations
credgate.dev/allowed-namespaces and/or credgate.dev/allowed-namespace-selector say which
namespaces may use it; credgate.dev/allowed-role-arns which roles it may assume and
credgate.dev/sts-endpoint where its keys may be sent (none: AWS's STS); or
credgate.dev/allowed-service-accounts which GCP service accounts it may impersonate and
credgate.dev/iamcredentials-endpoint where (none: Google's). Patterns take * and ?. A
Credential naming a source that does not grant it is not Ready (reason SourceNotGranted),
no cloud is called, and its pods are refused. See docs/aws.md and docs/gcp.md.`,
		Example: `  # In a cluster (in-cluster config, $POD_NAMESPACE)
  credgate refresher

  # Locally, against the cluster of your kubeconfig
  credgate refresher --kubeconfig ~/.kube/config --namespace credgate-refresher`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	f := cmd.Flags()
	f.StringVar(&o.kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster config, then $KUBECONFIG)")
	f.IntVarP(&o.verbosity, "verbosity", "v", 0, "log verbosity")
	f.StringVar(&o.Namespace, "namespace", defaultNamespace("credgate-refresher"), "the refresher's own namespace, $POD_NAMESPACE when set: the source Secrets and the leader-election Lease")
	f.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", `address of the metrics endpoint ("0" disables it)`)
	f.StringVar(&o.HealthAddr, "health-probe-bind-address", ":8081", "address of the /healthz and /readyz endpoints")
	f.BoolVar(&o.LeaderElection, "leader-elect", true, "elect one replica to work (a Lease in --namespace)")
	f.DurationVar(&o.MaxDuration, "aws-max-session-duration", 0, "cap every assumeRole session at this lifetime (0: as each Credential says, default 1h); under 15m only for servers that accept shorter sessions than STS")
	f.DurationVar(&o.MaxGCPLifetime, "gcp-max-token-lifetime", 0, "cap every impersonation access token at this lifetime (0: as each Credential says, default 1h)")
	return cmd
}

func (o *refresherOptions) run(cmd *cobra.Command) error {
	if o.Namespace == "" {
		return fmt.Errorf("--namespace must not be empty")
	}
	if o.MaxDuration < 0 || (o.MaxDuration > 0 && o.MaxDuration < time.Second) {
		return fmt.Errorf("--aws-max-session-duration %s: want 0 (no cap) or at least 1s", o.MaxDuration)
	}
	if o.MaxGCPLifetime < 0 || (o.MaxGCPLifetime > 0 && o.MaxGCPLifetime < time.Second) {
		return fmt.Errorf("--gcp-max-token-lifetime %s: want 0 (no cap) or at least 1s", o.MaxGCPLifetime)
	}
	log, sync := newLogger(o.verbosity, cmd.ErrOrStderr())
	defer sync()
	cfg, err := loadConfig(o.kubeconfig)
	if err != nil {
		return fmt.Errorf("load kubeconfig: %w", err)
	}
	scheme, err := app.NewScheme()
	if err != nil {
		return err
	}
	recorder := func(mgr manager.Manager) (events.EventRecorder, error) {
		return app.NewEventRecorder(mgr, cfg, scheme)
	}
	mgr, err := tempcreds.NewManager(cfg, scheme, o.ManagerOptions, log, recorder)
	if err != nil {
		return err
	}
	log.Info("starting the refresher", "version", version, "namespace", o.Namespace)
	return mgr.Start(cmd.Context())
}
