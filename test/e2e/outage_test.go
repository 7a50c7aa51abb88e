//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/audit"
	"github.com/credgate/credgate/internal/app"
	"github.com/credgate/credgate/test/cluster"
)

// TestControlPlaneRestart: kube-apiserver, then etcd, restarted while two clients create
// labelled pods and two replicas serve behind the Service beside the cluster's own credgate
// serve (which holds the Lease). While the API server is away nothing reaches credgate; once
// it is back:
//   - every replica is still running and serving (none exits for losing its watches or, the
//     leader, its Lease);
//   - their caches resynced: a Credential deleted right after the restart, which only a watch
//     re-established after it can report, is refused as unknown within seconds;
//   - no admission failed at credgate (failures the API server reports of itself while it or
//     etcd is away are counted apart);
//   - the elected replica's work resumed: the Lease is held, the serving certificate renewed;
//   - no request was audited twice, and the client metrics count the failed calls.
func TestControlPlaneRestart(t *testing.T) {
	ns := namespace(t)
	credential(t, ns, "wandb", v1alpha1.TypeWandB, map[string]string{"api-key": "k"}, nil)
	_, replicas := behindService(t, 2)
	clientErrors := func() float64 { return metricSum(t, `rest_client_requests_total{code="<error>"`) }
	errorsBefore := clientErrors()
	wandb := map[string]string{"credentials.credgate.dev/wandb": "true"}

	for _, part := range []struct {
		name    string
		restart func() (time.Duration, error)
	}{
		{"kube-apiserver", c.RestartAPIServer},
		{"etcd", func() (time.Duration, error) { return c.RestartEtcd(5 * time.Second) }},
	} {
		gone := "gone-" + strings.TrimPrefix(part.name, "kube-")
		credential(t, ns, gone, v1alpha1.TypeWandB, map[string]string{"api-key": "k"}, nil)
		// Every replica has it in its cache before the restart.
		if err := c.Client.Create(t.Context(), pod(ns, gone+"-before", map[string]string{"credentials.credgate.dev/" + gone: "true"})); err != nil {
			t.Fatalf("%s: a pod requesting %s before the restart: %v", part.name, gone, err)
		}
		l := startLoad(t, ns, 2, 50*time.Millisecond)
		time.Sleep(2 * time.Second)
		down, err := part.restart()
		if err != nil {
			t.Fatal(err)
		}
		back := time.Now()
		eventually(t, 30*time.Second, func() (bool, string) {
			err := c.Client.Delete(t.Context(), &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: gone}})
			return err == nil, fmt.Sprintf("delete Credential %s after the restart: %v", gone, err)
		})
		deleted := time.Since(back)
		// Every replica must know: the Service sends each connection to the next replica.
		refusedInARow := 0
		eventually(t, 60*time.Second, func() (bool, string) {
			err := c.Client.Create(t.Context(), pod(ns, fmt.Sprintf("%s-after-%d", gone, time.Now().UnixNano()),
				map[string]string{"credentials.credgate.dev/" + gone: "true"}))
			if err != nil && strings.Contains(err.Error(), "[unknown-credential]") {
				refusedInARow++
			} else {
				refusedInARow = 0
			}
			return refusedInARow >= 6, fmt.Sprintf("a pod requesting %s, deleted after the restart: %v", gone, err)
		})
		resynced := time.Since(back)
		if err := c.Client.Create(t.Context(), pod(ns, gone+"-wandb-after", wandb)); err != nil {
			t.Errorf("%s: a pod requesting wandb after the restart: %v", part.name, err)
		}
		admitted, failed := l.finish()
		var atCredgate, ofAPIServer []string
		for _, f := range failed {
			if strings.Contains(f, "webhook") || strings.Contains(f, "admitted without its credentials") {
				atCredgate = append(atCredgate, f)
			} else {
				ofAPIServer = append(ofAPIServer, f)
			}
		}
		t.Logf("%s restarted under 2 clients: away %s; every replica refused the Credential deleted after it %s after it was back (deleted after %s); %d admitted, %d failed at credgate, %d failed at the API server while %s was away",
			part.name, down.Round(100*time.Millisecond), resynced.Round(100*time.Millisecond), deleted.Round(100*time.Millisecond),
			admitted, len(atCredgate), len(ofAPIServer), part.name)
		if len(atCredgate) > 0 {
			t.Errorf("%s restart: %d admissions failed at credgate:\n%s", part.name, len(atCredgate), strings.Join(atCredgate, "\n"))
		}
		// The elected replica's work resumed: the Lease is held and the serving certificate
		// (renewed every few seconds here) renewed again.
		cert := servingCertSecret(t)
		eventually(t, 60*time.Second, func() (bool, string) {
			return servingCertSecret(t) != cert && leaseHolder(t, cluster.Namespace, app.LeaderElectionID) != "",
				"the serving certificate was not renewed after the restart"
		})
		if !c.CredgateRunning() {
			t.Errorf("%s restart: the cluster's credgate serve (the Lease holder) exited", part.name)
		}
		for i, r := range replicas {
			if !r.Running() {
				t.Errorf("%s restart: replica %d exited", part.name, i)
			}
		}
		if !c.RefresherRunning() {
			// credgate refresher, a controller and nothing else, exits when it loses its
			// Lease, as controllers do; its Deployment's kubelet starts it again.
			t.Logf("%s restart: credgate refresher exited (its Lease lost); started again, as the kubelet would", part.name)
			if err := c.StartRefresher(t.Context()); err != nil {
				t.Fatal(err)
			}
		}
	}

	if after := clientErrors(); after <= errorsBefore {
		t.Errorf(`rest_client_requests_total{code="<error>"} went from %v to %v: the metrics do not show the outage`, errorsBefore, after)
	}
	// Each request audited once, on whichever replica decided it.
	seen := map[string]string{}
	files := []string{c.AuditPath}
	for _, name := range []string{"credgate-svc-0", "credgate-svc-1"} {
		files = append(files, filepath.Join(c.WorkDir, name, "audit.log"))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		err = audit.Read(bytes.NewReader(data), f, func(r *audit.Record) error {
			if r.Namespace != ns {
				return nil
			}
			if prev, ok := seen[r.RequestUID]; ok {
				t.Errorf("request %s (%s) audited twice: in %s and %s", r.RequestUID, r.Name, prev, f)
			}
			seen[r.RequestUID] = f
			return nil
		}, func(p audit.Problem) { t.Errorf("%s: %v", f, p) })
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) == 0 {
		t.Error("no refusal of this test's namespace was audited")
	}
}
