package benchenv

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// Main runs the benchmark command name and returns its exit status: parse reads the flags
// (0 for -h, 2 for bad flags), run measures under a context Ctrl-C or SIGTERM cancels, so that
// deferred cleanups stop the servers (1 when it fails). The control plane's clients log
// nothing worth reading: the processes' logs are in the cluster's work directory.
func Main[O any](name string, parse func(args []string, stderr io.Writer) (O, error), run func(context.Context, O) error) int {
	o, err := parse(os.Args[1:], os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctrllog.SetLogger(logr.Discard())
	if err := run(ctx, o); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		return 1
	}
	return 0
}

// Command is how a results file names the command that made it: "go run ./bench/<name> <its
// arguments>", and, run by make, "make <target>, which ran: …".
func Command(name, target string) string {
	cmd := strings.TrimSpace("go run ./bench/" + name + " " + strings.Join(os.Args[1:], " "))
	if os.Getenv("MAKELEVEL") != "" {
		cmd = "make " + target + ", which ran: " + cmd
	}
	return cmd
}

// Report writes a results file with write: to stdout when path is "-", else to path and
// stdout both, saying so on stderr.
func Report(name, path string, write func(io.Writer) error) error {
	if path == "-" {
		return write(os.Stdout)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(io.MultiWriter(f, os.Stdout)); err != nil {
		_ = f.Close()
		return err
	}
	fmt.Fprintln(os.Stderr, name+": wrote", path)
	return f.Close()
}
