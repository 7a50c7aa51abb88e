package certs

import (
	"fmt"
	"time"

	"github.com/open-policy-agent/cert-controller/pkg/rotator"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// SelfManaged configures certificates credgate keeps itself, in the cluster: a CA and a
// serving certificate in a Secret of its own namespace, renewed by the leader replica well
// before they expire, the CA bundle kept current in credgate's own webhook configurations.
// Every replica mounts the Secret as its certificate directory; the kubelet updates the files
// and the webhook server reloads them without a restart.
//
// The rotation is open-policy-agent/cert-controller's; this is the glue.
type SelfManaged struct {
	// Secret holds the CA and the serving certificate; it must exist (it may be empty).
	Secret types.NamespacedName
	// DNSNames are the serving certificate's names: the Service's first.
	DNSNames []string
	// WebhookConfiguration names the mutating and the validating webhook configuration whose
	// CA bundle is kept current.
	WebhookConfiguration string
	// CertDir is where the Secret is mounted (informational: the rotator checks the files
	// there before reporting ready).
	CertDir string
	// CAValidity, ServingValidity, RenewBefore and CheckInterval default to 10 years, 1 year,
	// 90 days and 12 hours.
	CAValidity, ServingValidity, RenewBefore, CheckInterval time.Duration
	// ControllerName names the rotator's controller (default cert-rotator): unique in a
	// process.
	ControllerName string
}

// Add adds the rotator to mgr, which must run leader election: one replica rotates.
func (s SelfManaged) Add(mgr manager.Manager) error {
	if s.Secret.Namespace == "" || s.Secret.Name == "" || len(s.DNSNames) == 0 || s.WebhookConfiguration == "" {
		return fmt.Errorf("self-managed certificates need a Secret, DNS names and the webhook configuration's name")
	}
	def := func(d, v time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return v
	}
	r := &rotator.CertRotator{
		SecretKey:              s.Secret,
		CertDir:                s.CertDir,
		CAName:                 "credgate-ca",
		CAOrganization:         "credgate",
		DNSName:                s.DNSNames[0],
		ExtraDNSNames:          s.DNSNames[1:],
		IsReady:                make(chan struct{}),
		RequireLeaderElection:  true,
		ControllerName:         s.ControllerName,
		FieldOwner:             "credgate",
		CaCertDuration:         def(s.CAValidity, 10*365*24*time.Hour),
		ServerCertDuration:     def(s.ServingValidity, 365*24*time.Hour),
		LookaheadInterval:      def(s.RenewBefore, 90*24*time.Hour),
		RotationCheckFrequency: def(s.CheckInterval, 12*time.Hour),
		Webhooks: []rotator.WebhookInfo{
			{Name: s.WebhookConfiguration, Type: rotator.Mutating},
			{Name: s.WebhookConfiguration, Type: rotator.Validating},
		},
	}
	if err := rotator.AddRotator(mgr, r); err != nil {
		return fmt.Errorf("add certificate rotator: %w", err)
	}
	return nil
}
