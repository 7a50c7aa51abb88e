// Command credgate is the credential admission service for ML platforms: `credgate serve`
// runs the webhook, `credgate eval` runs the same admission path offline.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// commit is the source commit, set at build time with -ldflags "-X main.commit=..."; without
// it, the commit Go stamped into the binary (when built with VCS information) is used.
var commit string

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
