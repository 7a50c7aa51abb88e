package minio

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"k8s.io/apimachinery/pkg/util/wait"
)

// Root credentials of the test server.
const (
	RootUser     = "credgate-root"
	RootPassword = "credgate-root-password"
	Region       = "us-east-1"
)

// Server is a running MinIO.
type Server struct {
	Endpoint string // http://127.0.0.1:port
	cmd      *exec.Cmd
	dir      string
}

// Options configure StartWith.
type Options struct {
	// Env adds to MinIO's environment (MINIO_IDENTITY_OPENID_*, ...).
	Env []string
	// CAs are PEM certificates MinIO trusts when it calls out (an OpenID provider).
	CAs [][]byte
}

// Start runs bin/minio under root with a fresh data directory and waits until it is live.
func Start(ctx context.Context, root string) (*Server, error) {
	return StartWith(ctx, root, Options{})
}

// StartWith is Start with options.
func StartWith(ctx context.Context, root string, o Options) (*Server, error) {
	bin := filepath.Join(root, "bin", "minio")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("bin/minio is missing: run make minio")
	}
	dir, err := os.MkdirTemp("", "credgate-minio-")
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	console, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &Server{Endpoint: "http://127.0.0.1:" + strconv.Itoa(port), dir: dir}
	log, err := os.Create(filepath.Join(dir, "minio.log"))
	if err != nil {
		return nil, err
	}
	certs := filepath.Join(dir, "certs")
	if err := os.MkdirAll(filepath.Join(certs, "CAs"), 0o700); err != nil {
		return nil, err
	}
	for i, ca := range o.CAs {
		if err := os.WriteFile(filepath.Join(certs, "CAs", fmt.Sprintf("ca-%d.crt", i)), ca, 0o600); err != nil {
			return nil, err
		}
	}
	s.cmd = exec.Command(bin, "server", filepath.Join(dir, "data"), "--certs-dir", certs,
		"--address", "127.0.0.1:"+strconv.Itoa(port), "--console-address", "127.0.0.1:"+strconv.Itoa(console), "--quiet")
	s.cmd.Env = append(append(os.Environ(), "MINIO_ROOT_USER="+RootUser, "MINIO_ROOT_PASSWORD="+RootPassword,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off"), o.Env...)
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start minio: %w", err)
	}
	live := func(ctx context.Context) (bool, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.Endpoint+"/minio/health/live", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, nil
		}
		_ = res.Body.Close()
		return res.StatusCode == http.StatusOK, nil
	}
	if err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, live); err == nil {
		return s, nil
	}
	s.Stop()
	out, _ := os.ReadFile(filepath.Join(dir, "minio.log"))
	return nil, fmt.Errorf("minio did not come up in 60s:\n%s", out)
}

// Log returns what the server has logged so far, for a failing test to show.
func (s *Server) Log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "minio.log"))
	return string(b)
}

// Stop stops the server and removes its data.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
	_ = os.RemoveAll(s.dir)
}

// S3 returns an S3 client of the server with the given keys.
func (s *Server) S3(accessKey, secretKey, sessionToken string) *s3.Client {
	return s3.New(s3.Options{
		Region:       Region,
		BaseEndpoint: aws.String(s.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, secretKey, sessionToken),
	})
}

// Root returns an S3 client with the root credentials.
func (s *Server) Root() *s3.Client { return s.S3(RootUser, RootPassword, "") }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	return port, l.Close()
}
