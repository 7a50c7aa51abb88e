// Package benchenv describes the machine and the build a benchmark ran on, for the headers of
// the results files make bench-peer and make bench-scale write, finds the CA credgate serve
// is trusted with in a local cluster, and reads a server's /metrics (Scrape).
package benchenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// LoadAverage is the 1-minute load average, from /proc/loadavg.
func LoadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(data)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "unknown"
}

// Commit is the repository's HEAD, saying when the work tree has uncommitted changes.
func Commit(root string) string {
	out, err := exec.Command("git", "-C", root, "rev-parse", "HEAD").Output()
	if err != nil {
		return "unknown (not a git checkout)"
	}
	c := strings.TrimSpace(string(out))
	status, err := exec.Command("git", "--no-optional-locks", "-C", root, "status", "--porcelain", "--untracked-files=no").Output()
	if err == nil && len(bytes.TrimSpace(status)) > 0 {
		c += " (with uncommitted changes)"
	}
	return c
}

// CPUModel is the first CPU's model name, from /proc/cpuinfo.
func CPUModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	for sc := bufio.NewScanner(f); sc.Scan(); {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

// CredgateVersion is what bin/credgate version says.
func CredgateVersion(root string) string {
	out, err := exec.Command(filepath.Join(root, "bin", "credgate"), "version").Output()
	if err != nil {
		return "bin/credgate (version unknown)"
	}
	return "bin/" + strings.TrimSpace(string(out))
}

// CredgateCA returns the CA bundle credgate serve keeps in its mutating webhook configuration
// (self-managed certificates): what the API server trusts it with.
func CredgateCA(ctx context.Context, c client.Client) (*x509.CertPool, error) {
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	for deadline := time.Now().Add(30 * time.Second); ; {
		err := c.Get(ctx, client.ObjectKey{Name: "credgate"}, &mwc)
		if err == nil && len(mwc.Webhooks) > 0 && len(mwc.Webhooks[0].ClientConfig.CABundle) > 0 {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(mwc.Webhooks[0].ClientConfig.CABundle) {
				return nil, errors.New("credgate's webhook configuration holds no PEM certificate")
			}
			return pool, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("credgate's webhook configuration has no CA bundle after 30s (%v)", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// FindServe finds a running credgate serve process started with flag (as "--name=value",
// one argument) and returns its process id and arguments. Another cluster's credgate serve on
// the machine has other flags (its own port, its own audit file) and is never taken for it.
func FindServe(flag string) (pid int, args []string, ok bool) {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
		if len(args) > 1 && filepath.Base(args[0]) == "credgate" && args[1] == "serve" && slices.Contains(args, flag) {
			return pid, args, true
		}
	}
	return 0, nil, false
}
