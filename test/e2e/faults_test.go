//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/audit"
	"github.com/credgate/credgate/internal/app"
	"github.com/credgate/credgate/tempcreds"
	"github.com/credgate/credgate/test/cluster"
	"github.com/credgate/credgate/test/minio"
)

// load creates labelled pods through the API server from clients goroutines, each one after
// another with a pause, until stopped, and counts what became of them.
type load struct {
	mu       sync.Mutex
	admitted int
	failed   []string // each failure's time and error
	stop     chan struct{}
	wg       sync.WaitGroup
	started  time.Time
}

// startLoad starts clients clients creating pods in ns that request credential wandb.
func startLoad(t *testing.T, ns string, clients int, pause time.Duration) *load {
	t.Helper()
	l := &load{stop: make(chan struct{}), started: time.Now()}
	labels := map[string]string{"credentials.credgate.dev/wandb": "true"}
	for i := range clients {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for n := 0; ; n++ {
				select {
				case <-l.stop:
					return
				default:
				}
				p := pod(ns, fmt.Sprintf("load-%d-%d", i, n), labels)
				err := c.Client.Create(context.Background(), p)
				l.mu.Lock()
				switch {
				case err != nil:
					l.failed = append(l.failed, fmt.Sprintf("%s: %v", time.Since(l.started).Round(time.Millisecond), err))
				case len(p.Spec.Containers[0].Env) == 0:
					l.failed = append(l.failed, fmt.Sprintf("%s: pod %s admitted without its credentials", time.Since(l.started).Round(time.Millisecond), p.Name))
				default:
					l.admitted++
				}
				l.mu.Unlock()
				time.Sleep(pause)
			}
		}()
	}
	return l
}

// finish stops the clients and returns the counts.
func (l *load) finish() (admitted int, failed []string) {
	close(l.stop)
	l.wg.Wait()
	sort.Strings(l.failed)
	return l.admitted, l.failed
}

// behindService starts a Service (test/cluster: a TCP proxy to ready replicas, standing in
// for a Kubernetes Service and kube-proxy) with n new replicas of credgate serve behind it,
// and points the webhook configurations at it until the test ends.
func behindService(t *testing.T, n int) (*cluster.Service, []*cluster.Replica) {
	t.Helper()
	svc, rs, stop, err := c.StartBehindService(t.Context(), "credgate-svc", n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("point the webhooks back at credgate: %v", err)
		}
	})
	return svc, rs
}

func waitServiceReady(t *testing.T, svc *cluster.Service, n int) {
	t.Helper()
	eventually(t, 60*time.Second, func() (bool, string) {
		return svc.Ready() == n, fmt.Sprintf("%d of %d replicas ready behind the service", svc.Ready(), n)
	})
}

// TestRollingRestart: two replicas behind the Service, labelled pods created steadily, and
// each replica in turn stopped with SIGTERM and replaced, as a Deployment's rolling update
// does. credgate serve fails its readiness at once, keeps serving through --shutdown-delay
// while the Service stops sending it connections, drains what is in flight, and exits; the
// new replica is ready only once its caches synced and its policies compiled. No admission
// fails.
func TestRollingRestart(t *testing.T) {
	ns := namespace(t)
	credential(t, ns, "wandb", v1alpha1.TypeWandB, map[string]string{"api-key": "k"}, nil)
	svc, replicas := behindService(t, 2)
	l := startLoad(t, ns, 2, 20*time.Millisecond)
	time.Sleep(2 * time.Second)
	var stopped []time.Duration
	for i, r := range replicas {
		at := time.Now()
		if err := c.SignalReplica(r, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitReplica(r, 30*time.Second); err != nil {
			t.Errorf("replica %d after SIGTERM: %v", i, err)
		}
		stopped = append(stopped, time.Since(at).Round(10*time.Millisecond))
		svc.Remove(r)
		next, err := c.StartReplica(t.Context(), fmt.Sprintf("credgate-svc-%d-next", i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.StopReplica(next) })
		svc.Add(next)
		waitServiceReady(t, svc, 2)
	}
	time.Sleep(2 * time.Second)
	admitted, failed := l.finish()
	t.Logf("rolling restart of 2 replicas under 2 clients: %d admitted, %d failed in %s; replicas stopped %v after SIGTERM; %d connections refused by the service",
		admitted, len(failed), time.Since(l.started).Round(time.Second), stopped, svc.Refused.Load())
	if len(failed) > 0 {
		t.Errorf("%d admissions failed during the rolling restart:\n%s", len(failed), strings.Join(failed, "\n"))
	}
	if admitted < 50 {
		t.Errorf("only %d admissions: the load did not run", admitted)
	}
}

// TestReplicaKilled: of two replicas behind the Service, one is killed (SIGKILL) under load.
// The requests it had in flight, and connections the Service sends it before its readiness
// poll notices, fail; none after. The figure is logged; the test holds the failures to the
// first second after the kill.
func TestReplicaKilled(t *testing.T) {
	ns := namespace(t)
	credential(t, ns, "wandb", v1alpha1.TypeWandB, map[string]string{"api-key": "k"}, nil)
	svc, replicas := behindService(t, 2)
	l := startLoad(t, ns, 2, 20*time.Millisecond)
	time.Sleep(2 * time.Second)
	killedAt := time.Since(l.started)
	if err := c.SignalReplica(replicas[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = c.WaitReplica(replicas[0], 10*time.Second)
	time.Sleep(3 * time.Second)
	admitted, failed := l.finish()
	t.Logf("SIGKILL of 1 of 2 replicas under 2 clients: %d admitted, %d failed (killed at %s); %d connections refused by the service",
		admitted, len(failed), killedAt.Round(time.Millisecond), svc.Refused.Load())
	for _, f := range failed {
		at, err := time.ParseDuration(strings.SplitN(f, ":", 2)[0])
		if err != nil || at > killedAt+time.Second {
			t.Errorf("a failure after the first second since the kill: %s", f)
		}
	}
	if admitted < 50 {
		t.Errorf("only %d admissions: the load did not run", admitted)
	}
}

// TestLeaderKilled: the replica holding credgate serve's Lease (certificate rotation, the CA
// bundle, CredentialPolicy status) is killed, without releasing it, while two other replicas
// serve admissions behind the Service. Admissions go on without a failure; another replica
// takes the Lease once it expires and goes on renewing the serving certificate.
func TestLeaderKilled(t *testing.T) {
	ns := namespace(t)
	credential(t, ns, "wandb", v1alpha1.TypeWandB, map[string]string{"api-key": "k"}, nil)
	_, _ = behindService(t, 2)
	holder := func() string { return leaseHolder(t, cluster.Namespace, app.LeaderElectionID) }
	// The cluster's first replica holds the Lease: the others were started after it took it.
	if log := lastLeaseAcquired(t); log != "credgate.log" {
		t.Fatalf("the Lease was last acquired by %s, not by the cluster's first replica (credgate.log)", log)
	}
	was := holder()
	certBefore := servingCertSecret(t)
	l := startLoad(t, ns, 2, 20*time.Millisecond)
	time.Sleep(time.Second)
	killed := time.Now()
	c.KillCredgate()
	t.Cleanup(func() {
		if err := c.StartCredgate(context.Background()); err != nil {
			t.Errorf("restart credgate: %v", err)
		}
	})
	var takeover time.Duration
	eventually(t, 60*time.Second, func() (bool, string) {
		if h := holder(); h != "" && h != was {
			takeover = time.Since(killed)
			return true, ""
		}
		return false, "no other replica took the Lease"
	})
	var renewed time.Duration
	eventually(t, 60*time.Second, func() (bool, string) {
		if servingCertSecret(t) != certBefore {
			renewed = time.Since(killed)
			return true, ""
		}
		return false, "the serving certificate was not renewed after the leader was killed"
	})
	admitted, failed := l.finish()
	t.Logf("leader killed under 2 clients: Lease taken over after %s, certificate renewed after %s; %d admitted, %d failed",
		takeover.Round(100*time.Millisecond), renewed.Round(100*time.Millisecond), admitted, len(failed))
	if len(failed) > 0 {
		t.Errorf("%d admissions failed after the leader was killed:\n%s", len(failed), strings.Join(failed, "\n"))
	}
}

// lastLeaseAcquired returns the log, in the cluster's work directory, of the credgate serve
// process that last acquired the Lease: every acquisition is logged, and a replica that stops
// releases it.
func lastLeaseAcquired(t *testing.T) string {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(c.WorkDir, "credgate*.log"))
	if err != nil {
		t.Fatal(err)
	}
	last, at := "", 0.0
	for _, f := range logs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			var e struct {
				Msg  string  `json:"msg"`
				TS   float64 `json:"ts"`
				Lock string  `json:"lock"`
			}
			if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "Successfully acquired lease" &&
				e.Lock == cluster.Namespace+"/"+app.LeaderElectionID && e.TS > at {
				last, at = filepath.Base(f), e.TS
			}
		}
	}
	return last
}

// servingCertSecret returns the serving certificate in the Secret of self-managed certificates.
func servingCertSecret(t *testing.T) string {
	t.Helper()
	var sec corev1.Secret
	if err := c.Client.Get(t.Context(), cluster.CertSecret, &sec); err != nil {
		t.Fatal(err)
	}
	return string(sec.Data["tls.crt"])
}

// TestRefresherLeaderKilled: with a second credgate refresher standing by, the leader is killed
// (its Lease not released) while an assumeRole Credential's 30-second sessions are being
// refreshed. The stand-by takes the Lease once it expires and goes on refreshing on schedule:
// the Credential's current credentials never expire, and it mints no session twice.
func TestRefresherLeaderKilled(t *testing.T) {
	seedBuckets(t)
	ns := namespace(t)
	enableRefresher(t, ns)
	sourceSecret(t, "minio-leader-keys", minio.RootUser, minio.RootPassword, ns)
	assumeRoleCredential(t, ns, "s3", "minio-leader-keys")
	condition(t, ns, "s3", v1alpha1.ConditionReady, metav1.ConditionTrue)
	standby, err := c.StartRefresherReplica(t.Context(), "credgate-refresher-standby")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.StopReplica(standby) })
	holder := func() string { return leaseHolder(t, cluster.RefresherNamespace, tempcreds.LeaderElectionID) }
	was := holder()
	killed := time.Now()
	c.KillRefresher()
	t.Cleanup(func() {
		if err := c.StartRefresher(context.Background()); err != nil {
			t.Errorf("restart the refresher: %v", err)
		}
	})

	// Watch the Credential until the new leader has minted a session.
	var takeover time.Duration
	var expiries []time.Time // each session's expiry, in the order seen
	sinceTakeover := 0       // sessions seen since the takeover
	for deadline := time.Now().Add(15*time.Second + 2*awsSession); time.Now().Before(deadline) && sinceTakeover < 1; time.Sleep(200 * time.Millisecond) {
		if h := holder(); takeover == 0 && h != "" && h != was {
			takeover = time.Since(killed)
		}
		var cred v1alpha1.Credential
		if err := c.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "s3"}, &cred); err != nil {
			t.Fatal(err)
		}
		exp := cred.Status.ExpiresAt
		if exp == nil {
			t.Fatalf("the Credential lost its expiry: %+v", cred.Status)
		}
		if !time.Now().Before(exp.Time) {
			t.Fatalf("the Credential's credentials expired at %s and were not refreshed (takeover after %s)", exp.Time, takeover)
		}
		if n := len(expiries); n == 0 || !expiries[n-1].Equal(exp.Time) {
			expiries = append(expiries, exp.Time)
			if takeover != 0 {
				sinceTakeover++
			}
		}
	}
	t.Logf("refresher leader killed: Lease taken over after %s; sessions seen expiring at %v", takeover.Round(100*time.Millisecond), expiries)
	if takeover == 0 {
		t.Fatal("the stand-by never took the Lease")
	}
	if sinceTakeover < 1 {
		t.Errorf("no session minted after the takeover (sessions %v): the stand-by does not refresh", expiries)
	}
	for i := 1; i < len(expiries); i++ {
		if gap := expiries[i].Sub(expiries[i-1]); gap < awsSession/2 {
			t.Errorf("sessions expiring %s apart (%s, %s): minted twice", gap, expiries[i-1], expiries[i])
		}
	}
}

// leaseHolder is the holder of the Lease namespace/name, "" when none (or it cannot be read).
func leaseHolder(t *testing.T, namespace, name string) string {
	var lease coordinationv1.Lease
	if err := c.Client.Get(t.Context(), client.ObjectKey{Namespace: namespace, Name: name}, &lease); err != nil || lease.Spec.HolderIdentity == nil {
		return ""
	}
	return *lease.Spec.HolderIdentity
}

// TestAuditDiskFull: a replica whose audit file is on a full disk (/dev/full: every write fails
// with ENOSPC), with the default --audit-on-error=refuse. An admission that needs a record — a
// warning — is refused with a clear reason; a refusal still refuses, with its own; an admission
// with nothing to record is admitted; and the metric counts the failed records. (A disk that
// gets space back: TestAuditDiskRecovers.)
func TestAuditDiskFull(t *testing.T) {
	ns := namespace(t)
	credential(t, ns, "wandb", v1alpha1.TypeWandB, map[string]string{"api-key": "k"}, nil)
	credential(t, ns, "aws-keys", v1alpha1.TypeAWS, map[string]string{"aws_access_key_id": "AKIA", "aws_secret_access_key": "s"}, nil)
	credential(t, ns, "aws-admin", v1alpha1.TypeAWS, map[string]string{"aws_access_key_id": "AKIA", "aws_secret_access_key": "s"},
		func(s *v1alpha1.CredentialSpec) { s.Access.Level = v1alpha1.AccessAdmin })
	dir := filepath.Join(c.WorkDir, "credgate-full")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/full", filepath.Join(dir, "audit.log")); err != nil {
		t.Fatal(err)
	}
	full := servingAlone(t, "credgate-full")
	create := func(name, cred string) error {
		return c.Client.Create(t.Context(), pod(ns, name, map[string]string{"credentials.credgate.dev/" + cred: "true"}))
	}
	if err := create("warned", "aws-keys"); err == nil || !strings.Contains(err.Error(), "credgate could not write the audit record") {
		t.Errorf("a warned admission with no room for its record: %v, want refused for the audit record", err)
	}
	if err := create("refused", "aws-admin"); err == nil || !strings.Contains(err.Error(), "[admin-scoped-credential]") {
		t.Errorf("a refusal with no room for its record: %v, want its own refusal", err)
	}
	if err := create("clean", "wandb"); err != nil {
		t.Errorf("an admission with nothing to record: %v", err)
	}
	if n := metricSumAt(t, full.Metrics, "credgate_audit_write_errors_total"); n < 2 {
		t.Errorf("credgate_audit_write_errors_total = %v, want the two records that failed", n)
	}
}

// TestAuditDiskRecovers: a replica whose audit file is on a small disk of its own (a 64 KiB
// tmpfs, mounted by the test, which runs as root) that fills up while it serves. Warned
// admissions are admitted, each with its record, until the disk is full; then refused for
// their record; once space returns, admitted and recorded again — without a restart. The file
// holds whole records only: none half-written when the disk filled mid-record.
func TestAuditDiskRecovers(t *testing.T) {
	ns := namespace(t)
	credential(t, ns, "aws-keys", v1alpha1.TypeAWS, map[string]string{"aws_access_key_id": "AKIA", "aws_secret_access_key": "s"}, nil)
	dir := filepath.Join(c.WorkDir, "credgate-small")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount a 64 KiB tmpfs for the audit file (the e2e runs as root, as make test does on this project's machines): %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	servingAlone(t, "credgate-small")
	n := 0
	warned := func() (string, error) {
		n++
		name := fmt.Sprintf("warned-%d", n)
		return name, c.Client.Create(t.Context(), pod(ns, name, map[string]string{"credentials.credgate.dev/aws-keys": "true"}))
	}
	var recorded []string
	if name, err := warned(); err != nil {
		t.Fatalf("a warned admission with room for its record: %v", err)
	} else {
		recorded = append(recorded, name)
	}
	// Fill the disk: the audit file keeps only the free part of its last page.
	filler := filepath.Join(dir, "filler")
	if out, err := exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=1k").CombinedOutput(); err == nil {
		t.Fatalf("dd filled no disk: %s", out)
	}
	var refused string
	for range 20 {
		name, err := warned()
		if err == nil {
			recorded = append(recorded, name)
			continue
		}
		if !strings.Contains(err.Error(), "credgate could not write the audit record") {
			t.Fatalf("%s on a full disk: %v, want refused for its audit record", name, err)
		}
		refused = name
		break
	}
	if refused == "" {
		t.Fatal("20 warned admissions recorded on a full 64 KiB disk")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	name, err := warned()
	if err != nil {
		t.Fatalf("a warned admission once space returned: %v", err)
	}
	recorded = append(recorded, name)
	var got []string
	err = audit.Read(mustOpen(t, filepath.Join(dir, "audit.log")), "audit.log", func(r *audit.Record) error {
		got = append(got, r.Name)
		return nil
	}, func(p audit.Problem) { t.Errorf("a record half-written: %v", p) })
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, recorded) {
		t.Errorf("records %v, want those of the admitted %v (refused %s)", got, recorded, refused)
	}
	t.Logf("64 KiB audit disk: %d warned admissions recorded before it filled, %s refused, recorded again once space returned", len(recorded)-1, refused)
}

// mustOpen opens path for reading until the test ends.
func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// servingAlone starts a replica of credgate serve (its work directory name in the cluster's)
// and points the webhook configurations at it alone until the test ends.
func servingAlone(t *testing.T, name string) *cluster.Replica {
	t.Helper()
	r, err := c.StartReplica(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.StopReplica(r) })
	if err := c.PointWebhooks(t.Context(), r.Port); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.PointWebhooks(context.Background(), c.Port); err != nil {
			t.Errorf("point the webhooks back at credgate: %v", err)
		}
	})
	return r
}
