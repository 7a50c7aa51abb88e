package webhook

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	admissionv1 "k8s.io/api/admission/v1"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/credgate/credgate/audit"
)

// durabilityServerEnv, when set to an audit file path, makes the test binary a webhook server
// process instead of running tests: TestMain serves the Pod webhook, auditing to that file,
// on a free port it prints to stdout, until it is killed.
const durabilityServerEnv = "CREDGATE_TEST_DURABILITY_SERVER"

func TestMain(m *testing.M) {
	if path := os.Getenv(durabilityServerEnv); path != "" {
		if err := serveForDurability(path); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	// controller-runtime's webhook asks for a logger; without one set it prints a stack trace
	// (into bench/results.txt, among others).
	ctrllog.SetLogger(logr.Discard())
	os.Exit(m.Run())
}

// serveForDurability runs the handler credgate serve runs for Pods, with a FileSink auditor.
func serveForDurability(path string) error {
	rev, err := builtinPolicies()
	if err != nil {
		return err
	}
	sink, err := audit.OpenFile(path, audit.FileOptions{})
	if err != nil {
		return err
	}
	srv := crwebhook.NewServer(crwebhook.Options{})
	Handlers{Reviewer: reviewerFor(rev, testStore()), Audit: &audit.Auditor{Sinks: []audit.Sink{sink}}, Log: logr.Discard()}.
		Register(srv)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Println(l.Addr().String())
	return http.Serve(l, srv.WebhookMux()) //nolint:gosec // a test server on loopback, killed by the test
}

// TestAuditDurableBeforeResponse starts a webhook server as a separate process, drives a
// burst of refusals at it from concurrent clients, SIGKILLs it mid-burst, and then finds, in
// the audit file, every refusal whose response reached a client.
func TestAuditDurableBeforeResponse(t *testing.T) {
	path := t.TempDir() + "/audit.log"
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), durabilityServerEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("server did not start: %v", err)
	}
	url := "http://" + strings.TrimSpace(addr) + Kinds[0].Path

	body := readFixture(t, "pod-unknown-credential.json")
	var (
		mu        sync.Mutex
		refused   []string // UIDs whose refusal reached the client
		sent      int
		killed    = make(chan struct{})
		killOnce  sync.Once
		wg        sync.WaitGroup
		client    = &http.Client{Timeout: 10 * time.Second}
		killAfter = 300
	)
	for w := range 8 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-killed:
					return
				default:
				}
				uid := fmt.Sprintf("durable-%d-%d", w, i)
				resp, err := post1(t.Context(), client, url, withUID(t, body, uid))
				mu.Lock()
				sent++
				if err == nil && !resp.Allowed && resp.Result != nil && resp.Result.Code == http.StatusForbidden {
					refused = append(refused, uid)
				}
				n := len(refused)
				mu.Unlock()
				if err != nil {
					return // the server is gone
				}
				if n >= killAfter {
					killOnce.Do(func() {
						// SIGKILL: no deferred close, no flush, nothing but what fsync made durable.
						if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
							t.Error(err)
						}
						close(killed)
					})
				}
			}
		})
	}
	wg.Wait()
	_ = cmd.Wait()

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	inFile := map[string]bool{}
	err = audit.Read(bytes.NewReader(data), path, func(r *audit.Record) error {
		if r.Event != audit.EventDenied {
			return fmt.Errorf("record of %s is %s, want %s", r.RequestUID, r.Event, audit.EventDenied)
		}
		inFile[r.RequestUID] = true
		return nil
	}, func(p audit.Problem) {
		// The kill may cut the last line short; only a line after it would be a problem.
		if !bytes.HasSuffix(data, []byte("\n")) && p.Line == bytes.Count(data, []byte("\n"))+1 {
			return
		}
		t.Errorf("audit file: %v", p)
	})
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, uid := range refused {
		if !inFile[uid] {
			missing = append(missing, uid)
		}
	}
	t.Logf("%d requests sent, %d refusals answered, %d records on disk", sent, len(refused), len(inFile))
	if len(refused) < killAfter {
		t.Fatalf("only %d refusals answered before the server died; the test needs %d", len(refused), killAfter)
	}
	if len(missing) > 0 {
		t.Errorf("%d refusals reached the client but not the audit file: %v", len(missing), missing)
	}
}

func post1(ctx context.Context, c *http.Client, url string, body []byte) (*admissionv1.AdmissionResponse, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = res.Body.Close() }()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	return decodeResponse(b)
}

func withUID(t *testing.T, body []byte, uid string) []byte {
	t.Helper()
	var review map[string]any
	if err := json.Unmarshal(body, &review); err != nil {
		t.Fatal(err)
	}
	review["request"].(map[string]any)["uid"] = uid
	out, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
