package webhook

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/events"
)

// eventLog is an events.EventRecorder that keeps what it is given.
type eventLog struct {
	mu     sync.Mutex
	events []recorded
}

type recorded struct {
	Regarding          corev1.ObjectReference
	Type, Reason, Note string
}

func (l *eventLog) Eventf(regarding, _ runtime.Object, eventtype, reason, _, note string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, recorded{Regarding: *regarding.(*corev1.ObjectReference), Type: eventtype, Reason: reason,
		Note: fmt.Sprintf(note, args...)})
}

// TestRefusalEvents: a refusal leaves one Warning Event where users look — the object being
// updated, the owner of a pod that was never created, else the namespace — and nothing else
// does (admissions, warnings, dry runs).
func TestRefusalEvents(t *testing.T) {
	unknownLabel := func(req map[string]any) {
		labels := req["object"].(map[string]any)["metadata"].(map[string]any)["labels"].(map[string]any)
		labels["credentials.credgate.dev/openai"] = "true"
	}
	jobTemplateUnknown := func(req map[string]any) {
		spec := req["object"].(map[string]any)["spec"].(map[string]any)
		tmpl := spec["template"].(map[string]any)["metadata"].(map[string]any)
		tmpl["labels"].(map[string]any)["credentials.credgate.dev/openai"] = "true"
	}
	cronUnknown := func(req map[string]any) {
		req["object"].(map[string]any)["metadata"].(map[string]any)["labels"] = map[string]any{"credentials.credgate.dev/openai": "true"}
	}
	tests := []struct {
		name    string
		kind    string
		fixture string
		edit    func(req map[string]any)
		want    *corev1.ObjectReference
	}{
		{name: "pod of a Job: on the Job", kind: "Pod", fixture: "pod-training.json", edit: unknownLabel,
			want: &corev1.ObjectReference{APIVersion: "batch/v1", Kind: "Job", Namespace: testNamespace, Name: "train-llm",
				UID: "4f6a2c1e-9b8d-4e7f-a3c5-d2e1f0a9b8c7"}},
		{name: "new Job: on the namespace", kind: "Job", fixture: "job-labelled.json", edit: jobTemplateUnknown,
			want: &corev1.ObjectReference{APIVersion: "v1", Kind: "Namespace", Namespace: testNamespace, Name: testNamespace}},
		{name: "CronJob update: on the CronJob", kind: "CronJob", fixture: "cronjob-update.json", edit: cronUnknown,
			want: &corev1.ObjectReference{APIVersion: "batch/v1", Kind: "CronJob", Namespace: testNamespace, Name: "nightly-eval",
				UID: "7d8e9f00-1a2b-4c3d-8e4f-5a6b7c8d9e0f"}},
		{name: "dry run: none", kind: "Pod", fixture: "pod-training.json",
			edit: func(req map[string]any) { unknownLabel(req); req["dryRun"] = true }},
		{name: "warning: none", kind: "Pod", fixture: "pod-training.json"},
		{name: "admitted: none", kind: "Pod", fixture: "pod-labelled.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := readFixture(t, tt.fixture)
			if tt.edit != nil {
				body = editRequest(t, body, tt.edit)
			}
			m := newHandler(t, tt.kind, newReviewer(t, testStore()))
			var log eventLog
			m.Events = &log
			resp, _ := serve(t, newWebhook(t, m, newLogger(&logBuffer{})), body)
			if tt.want == nil {
				if len(log.events) != 0 {
					t.Errorf("events %+v, want none", log.events)
				}
				return
			}
			if len(log.events) != 1 {
				t.Fatalf("%d events, want 1: %+v (response %d %s)", len(log.events), log.events, resp.Result.Code, resp.Result.Message)
			}
			e := log.events[0]
			if diff := cmp.Diff(*tt.want, e.Regarding); diff != "" {
				t.Errorf("regarding (-want +got):\n%s", diff)
			}
			if e.Type != corev1.EventTypeWarning || e.Reason != ReasonRejected || e.Note != resp.Result.Message {
				t.Errorf("event %s/%s %q; want Warning/%s with the refusal %q", e.Type, e.Reason, e.Note, ReasonRejected, resp.Result.Message)
			}
		})
	}
}

// TestEventAggregation: a controller retrying a refused pod in a loop leaves one Event and
// a series update or two, not one Event a refusal. The recorder is client-go's events.k8s.io
// broadcaster, as credgate serve runs it, writing to a fake clientset that counts the writes.
func TestEventAggregation(t *testing.T) {
	cs := fake.NewClientset()
	b := events.NewBroadcaster(&events.EventSinkImpl{Interface: cs.EventsV1()})
	if err := b.StartRecordingToSinkWithContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Shutdown)
	scheme, err := testScheme()
	if err != nil {
		t.Fatal(err)
	}
	m := newHandler(t, "Pod", newReviewer(t, testStore()))
	m.Events = b.NewRecorder(scheme, "credgate")
	h := newWebhook(t, m, newLogger(&logBuffer{}))

	const refusals = 500
	for i := range refusals {
		body := editRequest(t, readFixture(t, "pod-training.json"), func(req map[string]any) {
			meta := req["object"].(map[string]any)["metadata"].(map[string]any)
			meta["name"] = fmt.Sprintf("train-llm-%d", i) // each retry is a new pod of the same Job
			meta["labels"].(map[string]any)["credentials.credgate.dev/openai"] = "true"
		})
		if resp, _ := serve(t, h, body); resp.Result.Code != 403 {
			t.Fatalf("refusal %d: code %d", i, resp.Result.Code)
		}
	}
	// The broadcaster writes asynchronously: wait until the writes stop changing.
	writes := func() []string {
		var out []string
		for _, a := range cs.Actions() {
			if a.GetResource().Resource == "events" && (a.GetVerb() == "create" || a.GetVerb() == "patch") {
				out = append(out, a.GetVerb())
			}
		}
		return out
	}
	var got []string
	_ = wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		if got = writes(); len(got) < 2 {
			return false, nil
		}
		time.Sleep(200 * time.Millisecond)
		return len(writes()) == len(got), nil
	})
	// One create; one patch that starts the series. The broadcaster also refreshes its series
	// once when it starts and then every 30 minutes, which may add one patch here: bounded by
	// time, never by the number of refusals.
	creates, patches := 0, 0
	for _, v := range got {
		if v == "create" {
			creates++
		} else {
			patches++
		}
	}
	if creates != 1 || patches < 1 || patches > 2 {
		t.Errorf("event writes for %d identical refusals: %v; want one create and one or two patches", refusals, got)
	}
	for _, a := range cs.Actions() {
		if c, ok := a.(clienttesting.CreateAction); ok && a.GetResource().Resource == "events" {
			if ev := c.GetObject(); !strings.Contains(fmt.Sprint(ev), ReasonRejected) {
				t.Errorf("created event %v is not a %s", ev, ReasonRejected)
			}
		}
	}
}
