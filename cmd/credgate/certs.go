package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/credgate/credgate/certs"
)

func newCertsCommand() *cobra.Command {
	var (
		dir, service, namespace string
		hosts                   []string
		validity                time.Duration
	)
	cmd := &cobra.Command{
		Use:   "certs",
		Short: "Generate a CA and a serving certificate for local use",
		Long: `Certs writes ca.crt, ca.key, tls.crt and tls.key into --dir: an ECDSA P-256 CA and a
serving certificate signed by it, valid for the webhook Service's DNS names, localhost,
127.0.0.1 and ::1, and any --host. Point credgate serve --cert-dir at the directory and put
ca.crt (base64) in the webhook configurations' caBundle.`,
		Example: `  credgate certs                   # into ~/.config/credgate/certs (the default --dir)
  credgate serve --cert-dir ~/.config/credgate/certs --kubeconfig ~/.kube/config`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := certs.Generate(certs.Options{
				Hosts:           append(certs.ServiceHosts(service, namespace), hosts...),
				ServingValidity: validity,
			})
			if err != nil {
				return err
			}
			if err := b.Write(dir); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s/{ca.crt,ca.key,tls.crt,tls.key}, serving certificate valid until %s for %v %v\n",
				dir, b.NotAfter.UTC().Format(time.RFC3339), b.DNSNames, b.IPAddresses)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", defaultCertsDir(), "directory to write the files to (private keys: keep it out of source trees)")
	f.StringVar(&service, "service", "credgate", "name of the webhook Service")
	f.StringVar(&namespace, "namespace", "credgate-system", "namespace of the webhook Service")
	f.StringArrayVar(&hosts, "host", nil, "extra DNS name or IP address (repeatable)")
	f.DurationVar(&validity, "validity", 90*24*time.Hour, "how long the serving certificate is valid")
	return cmd
}

// defaultCertsDir is credgate/certs in the user's configuration directory
// (~/.config/credgate/certs), never a path relative to where the command runs: private keys
// must not land in a source tree by default.
func defaultCertsDir() string {
	base, err := os.UserConfigDir()
	if err != nil {
		base = os.TempDir()
	}
	return filepath.Join(base, "credgate", "certs")
}
