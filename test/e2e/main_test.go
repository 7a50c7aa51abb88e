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
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/credgate/credgate/test/cluster"
	"github.com/credgate/credgate/test/minio"
)

var (
	c     *cluster.Cluster
	s3srv *minio.Server
)

func TestMain(m *testing.M) {
	// The test's own clients log nothing worth reading (credgate's logs are in c.WorkDir).
	ctrllog.SetLogger(logr.Discard())
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		os.Exit(1)
	}
	// Certificates renewed every few seconds, so that every test runs while they rotate
	// (TestCertRotationUnderLoad counts the rotations).
	c, err = cluster.Start(context.Background(), cluster.Options{Root: root, CertValidity: 30 * time.Second, RenewBefore: 22 * time.Second,
		RefresherArgs: []string{"--aws-max-session-duration=" + awsSession.String()}})
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		os.Exit(1)
	}
	// MinIO on 127.0.0.1 for the S3/STS tests, trusting the cluster's service-account issuer
	// for web identities.
	if s3srv, err = startMinIO(context.Background(), root); err != nil {
		c.Stop()
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

// startMinIO starts MinIO with an OpenID provider: the cluster's service-account issuer,
// whose discovery document and keys the API server serves (to anonymous callers once bound,
// as clusters that federate do), accepting tokens for webIdentityAudience with the readonly
// policy.
func startMinIO(ctx context.Context, root string) (*minio.Server, error) {
	b := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "e2e-service-account-issuer-discovery"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:service-account-issuer-discovery"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: "system:unauthenticated"}}}
	if err := c.Client.Create(ctx, b); err != nil {
		return nil, fmt.Errorf("let MinIO read the issuer's discovery document: %w", err)
	}
	return minio.StartWith(ctx, root, minio.Options{
		CAs: [][]byte{c.Config.CAData},
		Env: []string{
			"MINIO_IDENTITY_OPENID_CONFIG_URL=" + strings.TrimSuffix(c.Config.Host, "/") + "/.well-known/openid-configuration",
			"MINIO_IDENTITY_OPENID_CLIENT_ID=" + webIdentityAudience,
			"MINIO_IDENTITY_OPENID_ROLE_POLICY=readonly",
		},
	})
}
