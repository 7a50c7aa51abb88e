//go:build e2e

package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/audit"
)

// podUpdateRequests is how many pod UPDATEs have reached credgate's validating pod webhook,
// whatever it answered.
func podUpdateRequests(t *testing.T) float64 {
	t.Helper()
	n := 0.0
	for _, d := range []string{"allowed", "patched", "denied", "invalid", "error"} {
		n += metricSum(t, `credgate_admission_requests_total{decision="`+d+`",operation="update",webhook="/validate-v1-pod"}`)
	}
	return n
}

// patchPod merge-patches pod ns/name, or its subresource sub ("status", "ephemeralcontainers").
func patchPod(t *testing.T, ns, name, sub, patch string) error {
	t.Helper()
	obj := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	p := client.RawPatch(types.MergePatchType, []byte(patch))
	if sub == "" {
		return c.Client.Patch(t.Context(), obj, p)
	}
	return c.Client.SubResource(sub).Patch(t.Context(), obj, p)
}

func getPod(t *testing.T, ns, name string) *corev1.Pod {
	t.Helper()
	var p corev1.Pod
	if err := c.Client.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	return &p
}

// TestCredentialLabelsFixedAfterCreation: once a pod is created, its credential labels and
// credgate's annotations stay as they were — adding, removing or changing one, through the pod
// or its status, is refused by credgate (audited, with an Event on the pod), so
// kubectl get pods -l credentials.credgate.dev/<name> keeps answering who uses a credential.
// Every other update is admitted without reaching credgate (its request counter does not move),
// and goes through even while credgate is down: a controller removing a finalizer does not
// depend on it.
func TestCredentialLabelsFixedAfterCreation(t *testing.T) {
	ns := namespace(t)
	credential(t, ns, "wandb", v1alpha1.TypeWandB, map[string]string{"api-key": "k"}, nil)
	credential(t, ns, "hf", v1alpha1.TypeHuggingFace, map[string]string{"token": "t"}, nil)
	if err := c.Client.Create(t.Context(), pod(ns, "labelled", map[string]string{"credentials.credgate.dev/wandb": "true", "app": "x"})); err != nil {
		t.Fatal(err)
	}
	created := getPod(t, ns, "labelled")
	if created.Annotations["credgate.dev/injected"] == "" {
		t.Fatalf("the labelled pod was not injected: %v", created.Annotations)
	}
	plain := pod(ns, "plain", map[string]string{"app": "x"})
	plain.Finalizers = []string{"e2e.credgate.dev/hold"}
	if err := c.Client.Create(t.Context(), plain); err != nil {
		t.Fatal(err)
	}

	refused := []struct {
		name, sub, patch string
		want             string
	}{
		{name: "add a credential label", patch: `{"metadata":{"labels":{"credentials.credgate.dev/hf":"true"}}}`,
			want: "label credentials.credgate.dev/hf (added)"},
		{name: "remove a credential label", patch: `{"metadata":{"labels":{"credentials.credgate.dev/wandb":null}}}`,
			want: "label credentials.credgate.dev/wandb (removed)"},
		{name: "opt out of a credential", patch: `{"metadata":{"labels":{"credentials.credgate.dev/wandb":"false"}}}`,
			want: "label credentials.credgate.dev/wandb (changed)"},
		{name: "change credgate.dev/injected", patch: `{"metadata":{"annotations":{"credgate.dev/injected":"hf,wandb sha256:0000000000000000"}}}`,
			want: "annotation credgate.dev/injected (changed)"},
		{name: "remove credgate.dev/injected", patch: `{"metadata":{"annotations":{"credgate.dev/injected":null}}}`,
			want: "annotation credgate.dev/injected (removed)"},
		{name: "add credgate.dev/containers", patch: `{"metadata":{"annotations":{"credgate.dev/containers":"c"}}}`,
			want: "annotation credgate.dev/containers (added)"},
		// pods/status keeps the labels an update sends: without the webhook, this would work.
		{name: "add a credential label through pods/status", sub: "status",
			patch: `{"metadata":{"labels":{"credentials.credgate.dev/hf":"true"}}}`, want: "label credentials.credgate.dev/hf (added)"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			before := podUpdateRequests(t)
			err := patchPod(t, ns, "labelled", tt.sub, tt.patch)
			if err == nil || !apierrors.IsForbidden(err) {
				t.Fatalf("err = %v, want a refusal", err)
			}
			for _, s := range []string{`admission webhook "vpodupdate.credgate.dev" denied the request`,
				"credgate refused the Pod: [immutable-credential-label]", tt.want, "fixed when the pod is created", "delete the pod"} {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("refusal %q does not contain %q", err, s)
				}
			}
			if after := podUpdateRequests(t); after != before+1 {
				t.Errorf("pod update requests %v -> %v, want one more", before, after)
			}
			got := getPod(t, ns, "labelled")
			if diff := cmp.Diff(created.Labels, got.Labels); diff != "" {
				t.Errorf("labels changed (-created +now):\n%s", diff)
			}
			if diff := cmp.Diff(created.Annotations, got.Annotations); diff != "" {
				t.Errorf("annotations changed (-created +now):\n%s", diff)
			}
		})
	}

	t.Run("refusals are audited and leave an Event on the pod", func(t *testing.T) {
		eventually(t, 10*time.Second, func() (bool, string) {
			recs, err := auditRecords()
			if err != nil {
				return false, err.Error()
			}
			n := 0
			for _, r := range recs {
				if r.Namespace == ns && r.Event == audit.EventDenied && r.Operation == "UPDATE" && r.Kind == "Pod" && r.Name == "labelled" &&
					len(r.Violations) == 1 && r.Violations[0].Rule == "immutable-credential-label" {
					n++
				}
			}
			return n == len(refused), fmt.Sprintf("%d audited refusals of updates of pod %s/labelled, want %d", n, ns, len(refused))
		})
		eventually(t, 20*time.Second, func() (bool, string) {
			var evs eventsv1.EventList
			if err := c.Client.List(t.Context(), &evs, client.InNamespace(ns)); err != nil {
				return false, err.Error()
			}
			for _, e := range evs.Items {
				if e.Reason == "CredentialsRejected" && e.Regarding.Kind == "Pod" && e.Regarding.Name == "labelled" &&
					e.Regarding.UID == created.UID && strings.Contains(e.Note, "immutable-credential-label") {
					return true, ""
				}
			}
			return false, fmt.Sprintf("no CredentialsRejected Event on pod %s/labelled (%d events)", ns, len(evs.Items))
		})
	})

	admitted := []struct {
		name, pod, sub, patch string
	}{
		{name: "change an unrelated label of a labelled pod", pod: "labelled", patch: `{"metadata":{"labels":{"app":"y"}}}`},
		{name: "add an unrelated annotation to a labelled pod", pod: "labelled", patch: `{"metadata":{"annotations":{"example.com/note":"n"}}}`},
		{name: "write the status of a labelled pod", pod: "labelled", sub: "status", patch: `{"status":{"message":"e2e"}}`},
		{name: "remove the finalizer of an unlabelled pod", pod: "plain", patch: `{"metadata":{"finalizers":null,"labels":{"app":"y"}}}`},
		{name: "add a finalizer to a labelled pod", pod: "labelled", patch: `{"metadata":{"finalizers":["e2e.credgate.dev/hold"]}}`},
	}
	for _, tt := range admitted {
		t.Run(tt.name, func(t *testing.T) {
			before := podUpdateRequests(t)
			if err := patchPod(t, ns, tt.pod, tt.sub, tt.patch); err != nil {
				t.Fatalf("refused: %v", err)
			}
			if after := podUpdateRequests(t); after != before {
				t.Errorf("an update that changes no credential label reached credgate: requests %v -> %v", before, after)
			}
		})
	}

	// pods/ephemeralcontainers keeps the stored pod's metadata, whatever the update sends: a
	// label sent with it never changes, and never needs credgate.
	t.Run("pods/ephemeralcontainers does not change labels", func(t *testing.T) {
		before := podUpdateRequests(t)
		want := getPod(t, ns, "labelled").Labels
		err := patchPod(t, ns, "labelled", "ephemeralcontainers", `{"metadata":{"labels":{"credentials.credgate.dev/hf":"true"}}}`)
		if err != nil {
			t.Logf("patch through pods/ephemeralcontainers: %v", err)
		}
		if diff := cmp.Diff(want, getPod(t, ns, "labelled").Labels); diff != "" {
			t.Errorf("labels changed through pods/ephemeralcontainers (-before +after):\n%s", diff)
		}
		if after := podUpdateRequests(t); after != before {
			t.Errorf("requests %v -> %v: the stored labels did not change, credgate had nothing to check", before, after)
		}
	})

	t.Run("while credgate is down", func(t *testing.T) {
		c.StopCredgate()
		t.Cleanup(func() {
			if err := c.StartCredgate(context.Background()); err != nil {
				t.Fatalf("restart credgate: %v", err)
			}
		})
		for _, u := range []struct{ pod, sub, patch string }{
			{"plain", "", `{"metadata":{"finalizers":["e2e.credgate.dev/hold"]}}`},
			{"plain", "", `{"metadata":{"finalizers":null}}`},
			{"labelled", "", `{"metadata":{"finalizers":null,"labels":{"app":"z"}}}`},
			{"labelled", "status", `{"status":{"message":"e2e while down"}}`},
		} {
			if err := patchPod(t, ns, u.pod, u.sub, u.patch); err != nil {
				t.Errorf("patch %s %s %s while credgate is down: %v", u.pod, u.sub, u.patch, err)
			}
		}
		err := patchPod(t, ns, "labelled", "", `{"metadata":{"labels":{"credentials.credgate.dev/hf":"true"}}}`)
		if err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
			t.Errorf("a credential label added while credgate is down: err = %v, want the webhook call to fail", err)
		}
		if got := getPod(t, ns, "labelled").Labels; !maps.Equal(got, map[string]string{"credentials.credgate.dev/wandb": "true", "app": "z"}) {
			t.Errorf("labels %v after the updates while credgate was down", got)
		}
	})
}

// quotePolicy is a careless user policy: it refuses pods that set E2E_QUOTE_ME and quotes the
// value in its message. It refuses Pods only, so that a Job carrying the variable is admitted
// and its pods are refused, one by one, to the Job controller.
const quotePolicy = `package credgate.admission

deny contains {"rule": "e2e-quotes-env", "credential": "", "message": msg} if {
	input.request.kind.kind == "Pod"
	some c in input.pod.spec.containers
	some e in c.env
	e.name == "E2E_QUOTE_ME"
	msg := sprintf("container %s sets E2E_QUOTE_ME=%s", [c.name, e.value])
}
`

// TestJobControllerEventRedacted: a policy that quotes a value the pod sets has it replaced
// by [redacted] in the refusal itself, not only in credgate's audit record and Event — the Job
// controller copies the refusal of each pod it cannot create into its own FailedCreate Event,
// which anyone who can read Events in the namespace sees. Nor is the value in credgate's audit
// file or log.
func TestJobControllerEventRedacted(t *testing.T) {
	ns := namespace(t)
	credential(t, ns, "wandb", v1alpha1.TypeWandB, map[string]string{"api-key": "k"}, nil)
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	value := hex.EncodeToString(b) // 24 characters, in this run only

	// probe creates, as a dry run, a pod that the policy refuses once it serves.
	probe := func(ctx context.Context) error {
		p := pod(ns, "probe", map[string]string{"credentials.credgate.dev/wandb": "true"})
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "E2E_QUOTE_ME", Value: "probe-value-" + value}}
		return c.Client.Create(ctx, p, client.DryRunAll)
	}
	// Written beside the directory, then renamed into it: the watcher never reads half a file.
	tmp := filepath.Join(c.WorkDir, "e2e_quote.rego")
	if err := os.WriteFile(tmp, []byte(quotePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	policy := filepath.Join(c.PolicyDir, "e2e_quote.rego")
	if err := os.Rename(tmp, policy); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(policy); err != nil {
			t.Errorf("remove the policy: %v", err)
		}
		// Other tests run on the built-in policies only: wait until the probe is admitted.
		eventually(t, 30*time.Second, func() (bool, string) {
			err := probe(context.Background())
			return err == nil, fmt.Sprintf("after the policy was removed: err = %v", err)
		})
	})
	eventually(t, 30*time.Second, func() (bool, string) {
		err := probe(t.Context())
		return err != nil && strings.Contains(err.Error(), "[e2e-quotes-env]"), fmt.Sprintf("waiting for the policy to serve: err = %v", err)
	})
	if err := probe(t.Context()); err == nil || strings.Contains(err.Error(), value) || !strings.Contains(err.Error(), "E2E_QUOTE_ME=[redacted]") {
		t.Errorf("the refusal of a dry-run pod: %v; want the value redacted", err)
	}

	j := job(ns, "quoted", []string{"wandb"}, corev1.EnvVar{Name: "E2E_QUOTE_ME", Value: value})
	if err := c.Client.Create(t.Context(), j); err != nil {
		t.Fatalf("create the Job (the policy refuses Pods only): %v", err)
	}
	// No namespace controller runs here: delete the Job itself, so that the Job controller
	// stops retrying its pods (and sending credgate requests) once this test is over.
	t.Cleanup(func() {
		if err := c.Client.Delete(context.Background(), j, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil {
			t.Errorf("delete the Job: %v", err)
		}
	})

	var failed corev1.Event
	eventually(t, 60*time.Second, func() (bool, string) {
		var evs corev1.EventList
		if err := c.Client.List(t.Context(), &evs, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		for _, e := range evs.Items {
			if e.Reason == "FailedCreate" && e.InvolvedObject.Kind == "Job" && e.InvolvedObject.Name == "quoted" {
				failed = e
				return true, ""
			}
		}
		return false, fmt.Sprintf("no FailedCreate Event on Job %s/quoted (%d events)", ns, len(evs.Items))
	})
	for _, s := range []string{"credgate refused the Pod", "[e2e-quotes-env]", "E2E_QUOTE_ME=[redacted]"} {
		if !strings.Contains(failed.Message, s) {
			t.Errorf("the Job controller's FailedCreate Event %q does not contain %q", failed.Message, s)
		}
	}
	if strings.Contains(failed.Message, value) {
		t.Errorf("the Job controller's FailedCreate Event shows the value: %q", failed.Message)
	}

	// Every Event of the namespace, both APIs (credgate's CredentialsRejected included).
	var core corev1.EventList
	if err := c.Client.List(t.Context(), &core, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var evs eventsv1.EventList
	if err := c.Client.List(t.Context(), &evs, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	for _, e := range core.Items {
		if strings.Contains(fmt.Sprintf("%+v", e), value) {
			t.Errorf("Event %s (%s) shows the value: %q", e.Name, e.Reason, e.Message)
		}
	}
	for _, e := range evs.Items {
		if strings.Contains(fmt.Sprintf("%+v", e), value) {
			t.Errorf("Event %s (%s) shows the value: %q", e.Name, e.Reason, e.Note)
		}
	}

	// The refusals were audited — with the value redacted.
	eventually(t, 10*time.Second, func() (bool, string) {
		recs, err := auditRecords()
		if err != nil {
			return false, err.Error()
		}
		for _, r := range recs {
			if r.Namespace == ns && r.Kind == "Pod" && r.Event == audit.EventDenied && len(r.Violations) > 0 && r.Violations[0].Rule == "e2e-quotes-env" {
				return true, ""
			}
		}
		return false, fmt.Sprintf("no audited refusal of a pod of Job %s/quoted", ns)
	})
	for _, f := range []string{c.AuditPath, filepath.Join(c.WorkDir, "credgate.log")} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), value) {
			t.Errorf("%s contains the value", f)
		}
	}
}
