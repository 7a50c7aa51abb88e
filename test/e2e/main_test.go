//go:build e2e

// Package e2e runs credgate against a real control plane (package test/cluster): etcd and
// kube-apiserver, kube-controller-manager running the Job and CronJob controllers, and
// credgate serve as its own process over TLS behind manifests/webhook. make test builds the
// binaries (make control-plane build) and runs it with -tags e2e.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/credgate/credgate/test/cluster"
	"github.com/credgate/credgate/test/minio"
)

var (
	c     *cluster.Cluster
	s3srv *minio.Server
)

func TestMain(m *testing.M) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		os.Exit(1)
	}
	// Certificates renewed every few seconds, so that every test runs while they rotate
	// (TestCertRotationUnderLoad counts the rotations).
	// MinIO on 127.0.0.1 for the S3/STS tests.
	if s3srv, err = minio.Start(context.Background(), root); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		os.Exit(1)
	}
	c, err = cluster.Start(context.Background(), cluster.Options{Root: root, CertValidity: 30 * time.Second, RenewBefore: 22 * time.Second,
		CredgateArgs: []string{"--aws-max-session-duration=" + awsSession.String()}})
	if err != nil {
		s3srv.Stop()
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	c.Stop()
	s3srv.Stop()
	if code == 0 {
		c.RemoveWorkDir()
	} else {
		fmt.Fprintf(os.Stderr, "e2e: logs of the control plane and credgate kept in %s\n", c.WorkDir)
	}
	os.Exit(code)
}
