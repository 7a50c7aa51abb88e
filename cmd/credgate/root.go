package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// exitError carries an exit code out of a command without printing anything more.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit code %d", e.code) }

// run executes the credgate command line and returns the process exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := &cobra.Command{
		Use:   "credgate",
		Short: "Inject credentials into ML training pods, and refuse the unsafe ones",
		Long: `credgate is a Kubernetes admission service for ML platforms. Label a Job (or any pod
template) credentials.credgate.dev/<name>: "true" and credgate injects the named Credential —
environment variables from Secrets, secret files, image-pull secrets — into every container
of its pods, after refusing credentials that must not be used.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       versionString(),
	}
	root.SetVersionTemplate("credgate {{.Version}}\n")
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newServeCommand(), newRefresherCommand(), newEvalCommand(), newPolicyCommand(), newAuditCommand(), newCertsCommand(), newVersionCommand())

	err := root.ExecuteContext(ctx)
	var ee exitError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case err != nil:
		fmt.Fprintf(stderr, "error: %v\n", err)
		return 2
	}
	return 0
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the credgate version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(cmd.OutOrStdout(), "credgate %s\n", versionString())
			return err
		},
	}
}

// versionString is the release version (set by the build) with the commit, Go version and
// platform the binary was built from, so a running image can be traced to its source.
func versionString() string {
	c, modified := commit, false
	if info, ok := debug.ReadBuildInfo(); ok && c == "" {
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				c = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if c == "" {
		c = "unknown"
	}
	if modified {
		c += "-dirty"
	}
	return fmt.Sprintf("%s (commit %s, %s, %s/%s)", version, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
