package webhook

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"

	"github.com/credgate/credgate/audit"
)

// TestFixedMetadata: the pod validating webhook refuses an UPDATE — of the pod or of a
// subresource — that adds, removes or changes a credential label or a credgate.dev/
// annotation, naming every key it changes, and admits any other; the refusal is audited and
// leaves an Event on the pod, like every refusal. The mutating webhook and other kinds' webhooks
// still leave updates alone.
func TestFixedMetadata(t *testing.T) {
	const podUID = "0a1b2c3d-pod-uid"
	meta := func(req map[string]any, which string) map[string]any {
		return req[which].(map[string]any)["metadata"].(map[string]any)
	}
	// edit applies change to the labels and annotations of the fixture's object (the old
	// object has labels app and credentials.credgate.dev/wandb, and the injected annotation).
	edit := func(change func(labels, annotations map[string]any)) func(req map[string]any) {
		return func(req map[string]any) {
			change(meta(req, "object")["labels"].(map[string]any), meta(req, "object")["annotations"].(map[string]any))
		}
	}
	tests := []struct {
		name     string
		kind     string // "": Pod
		mutating bool
		edit     func(req map[string]any)
		want     outcome
		// wantMsg are substrings of the refusal; an empty one admits.
		wantMsg []string
	}{
		{
			name: "unrelated label added",
			edit: edit(func(l, _ map[string]any) { l["stage"] = "eval" }),
			want: outcome{Allowed: true, Code: 200},
		},
		{
			name: "unrelated annotation changed, finalizer removed",
			edit: func(req map[string]any) {
				meta(req, "object")["annotations"].(map[string]any)["example.com/note"] = "x"
				delete(meta(req, "object"), "finalizers")
			},
			want: outcome{Allowed: true, Code: 200},
		},
		{
			name: "credential label added",
			edit: edit(func(l, _ map[string]any) { l["credentials.credgate.dev/hf"] = "true" }),
			want: outcome{Code: 403},
			wantMsg: []string{
				"credgate refused the Pod: [immutable-credential-label] this update changes label credentials.credgate.dev/hf (added)",
				"are fixed when the pod is created",
				"delete the pod and create it again",
				"create a new Job",
			},
		},
		{
			name:    "credential label removed",
			edit:    edit(func(l, _ map[string]any) { delete(l, "credentials.credgate.dev/wandb") }),
			want:    outcome{Code: 403},
			wantMsg: []string{"this update changes label credentials.credgate.dev/wandb (removed),"},
		},
		{
			name:    "credential label opted out",
			edit:    edit(func(l, _ map[string]any) { l["credentials.credgate.dev/wandb"] = "false" }),
			want:    outcome{Code: 403},
			wantMsg: []string{"this update changes label credentials.credgate.dev/wandb (changed),"},
		},
		{
			name:    "every label removed",
			edit:    func(req map[string]any) { delete(meta(req, "object"), "labels") },
			want:    outcome{Code: 403},
			wantMsg: []string{"this update changes label credentials.credgate.dev/wandb (removed),"},
		},
		{
			name:    "injected annotation changed",
			edit:    edit(func(_, a map[string]any) { a["credgate.dev/injected"] = "hf,wandb sha256:0000000000000000" }),
			want:    outcome{Code: 403},
			wantMsg: []string{"this update changes annotation credgate.dev/injected (changed),"},
		},
		{
			name: "several keys at once: each named, labels first, sorted",
			edit: edit(func(l, a map[string]any) {
				delete(a, "credgate.dev/injected")
				a["credgate.dev/containers"] = "trainer"
				l["credentials.credgate.dev/kaggle"] = "true"
				l["credentials.credgate.dev/hf"] = "true"
				l["stage"] = "eval"
			}),
			want: outcome{Code: 403},
			wantMsg: []string{"this update changes label credentials.credgate.dev/hf (added), label credentials.credgate.dev/kaggle (added), " +
				"annotation credgate.dev/containers (added), annotation credgate.dev/injected (removed), but"},
		},
		{
			name: "a pod created without labels gains one",
			edit: func(req map[string]any) {
				delete(meta(req, "oldObject"), "labels")
				delete(meta(req, "oldObject"), "annotations")
				meta(req, "object")["labels"] = map[string]any{"credentials.credgate.dev/wandb": "true"}
				delete(meta(req, "object"), "annotations")
			},
			want:    outcome{Code: 403},
			wantMsg: []string{"this update changes label credentials.credgate.dev/wandb (added),"},
		},
		{
			// pods/status keeps the labels an update sends (only ephemeralcontainers and resize
			// reset metadata), so the webhook is registered for it too.
			name: "status subresource changes a credential label",
			edit: func(req map[string]any) {
				req["subResource"] = "status"
				req["requestSubResource"] = "status"
				meta(req, "object")["labels"].(map[string]any)["credentials.credgate.dev/hf"] = "true"
			},
			want:    outcome{Code: 403},
			wantMsg: []string{"label credentials.credgate.dev/hf (added)"},
		},
		{
			name:     "mutating webhook: updates are not its business",
			mutating: true,
			edit:     edit(func(l, _ map[string]any) { l["credentials.credgate.dev/hf"] = "true" }),
			want:     outcome{Allowed: true, Code: 200},
		},
		{
			name:    "no old object",
			edit:    func(req map[string]any) { delete(req, "oldObject") },
			want:    outcome{Code: 400},
			wantMsg: []string{"the admission request has no old object"},
		},
		{
			name: "old object of another kind",
			edit: func(req map[string]any) {
				req["oldObject"] = map[string]any{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "x"}}
			},
			want:    outcome{Code: 400},
			wantMsg: []string{"decode old Pod"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := editRequest(t, readFixture(t, "pod-update.json"), func(req map[string]any) {
				for _, which := range []string{"oldObject", "object"} {
					m := meta(req, which)
					m["uid"] = podUID
					m["finalizers"] = []any{"batch.kubernetes.io/job-tracking"}
					m["annotations"] = map[string]any{"credgate.dev/injected": "wandb sha256:0123456789abcdef"}
					delete(m["labels"].(map[string]any), "stage")
				}
				tt.edit(req)
			})
			m := newHandler(t, "Pod", newReviewer(t, testStore()))
			m.ValidateOnly = !tt.mutating
			sink := &memorySink{}
			var events eventLog
			m.Audit, m.Events = &audit.Auditor{Sinks: []audit.Sink{sink}, Allowed: true}, &events
			reg := prometheus.NewRegistry()
			metrics, err := NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			m.Metrics = metrics
			var logs logBuffer
			resp, _ := serve(t, newWebhook(t, m, newLogger(&logs)), body)

			checkOutcome(t, resp, tt.want, tt.wantMsg)
			if strings.Contains(resp.Result.Message, "sha256:") {
				t.Errorf("message %q quotes an annotation value", resp.Result.Message)
			}
			if resp.Allowed || resp.Result.Code != 403 {
				if recs := sink.records(t); len(recs) != 0 || len(events.events) != 0 {
					t.Errorf("no refusal, yet records %+v and events %+v", recs, events.events)
				}
				return
			}

			recs := sink.records(t)
			if len(recs) != 1 {
				t.Fatalf("%d audit records, want 1: %+v", len(recs), recs)
			}
			r := recs[0]
			wantViolations := []audit.Violation{{Rule: RuleFixedMetadata, Action: "deny",
				Message: strings.TrimPrefix(resp.Result.Message, "credgate refused the Pod: [immutable-credential-label] ")}}
			if diff := cmp.Diff(wantViolations, r.Violations); diff != "" {
				t.Errorf("audit violations (-want +got):\n%s", diff)
			}
			if r.Event != audit.EventDenied || r.Operation != "UPDATE" || r.Kind != "Pod" || r.Name != "finetune" {
				t.Errorf("audit record %+v, want an UPDATE of Pod finetune denied", r)
			}
			if len(events.events) != 1 {
				t.Fatalf("%d events, want 1: %+v", len(events.events), events.events)
			}
			wantEvent := recorded{Regarding: corev1.ObjectReference{APIVersion: "v1", Kind: "Pod", Namespace: testNamespace,
				Name: "finetune", UID: podUID}, Type: corev1.EventTypeWarning, Reason: ReasonRejected, Note: resp.Result.Message}
			if diff := cmp.Diff(wantEvent, events.events[0]); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
			if n := testutil.ToFloat64(metrics.denials.WithLabelValues(RuleFixedMetadata)); n != 1 {
				t.Errorf("credgate_denials_total{rule=%q} = %v, want 1", RuleFixedMetadata, n)
			}
			if !strings.Contains(logs.String(), `"msg"="refused"`) || !strings.Contains(logs.String(), `"rules"=["immutable-credential-label"]`) {
				t.Errorf("refusal not logged:\n%s", logs.String())
			}
		})
	}
}

// TestFixedMetadataDryRun: a server-side dry run is refused the same, recorded as a dry run,
// and leaves no Event.
func TestFixedMetadataDryRun(t *testing.T) {
	body := editRequest(t, readFixture(t, "pod-update.json"), func(req map[string]any) {
		req["dryRun"] = true
		req["object"].(map[string]any)["metadata"].(map[string]any)["labels"].(map[string]any)["credentials.credgate.dev/hf"] = "true"
	})
	m := newHandler(t, "Pod", newReviewer(t, testStore()))
	m.ValidateOnly = true
	sink := &memorySink{}
	var events eventLog
	m.Audit, m.Events = &audit.Auditor{Sinks: []audit.Sink{sink}}, &events
	resp, _ := serve(t, newWebhook(t, m, newLogger(&logBuffer{})), body)
	if resp.Allowed || !strings.Contains(resp.Result.Message, "[immutable-credential-label]") {
		t.Fatalf("dry run not refused: %d %s", resp.Result.Code, resp.Result.Message)
	}
	if recs := sink.records(t); len(recs) != 1 || !recs[0].DryRun {
		t.Errorf("records %+v, want one dry-run record", recs)
	}
	if len(events.events) != 0 {
		t.Errorf("events %+v, want none for a dry run", events.events)
	}
}

// TestFixedOnUpdateOnlyPods: only the Pod validating webhook checks updates; Jobs (whose pod
// template the API server keeps immutable) and CronJobs (reviewed again on update) do not.
func TestFixedOnUpdateOnlyPods(t *testing.T) {
	for _, k := range Kinds {
		if got, want := k.FixedOnUpdate, k.GVK.Kind == "Pod"; got != want {
			t.Errorf("%s: FixedOnUpdate = %v, want %v", k.GVK.Kind, got, want)
		}
	}
	body := editRequest(t, readFixture(t, "job-labelled.json"), func(req map[string]any) {
		req["operation"] = "UPDATE"
		req["oldObject"] = req["object"]
	})
	m := newHandler(t, "Job", newReviewer(t, testStore()))
	m.ValidateOnly = true
	resp, _ := serve(t, newWebhook(t, m, newLogger(&logBuffer{})), body)
	if !resp.Allowed || !strings.Contains(resp.Result.Message, "does not mutate this operation") {
		t.Errorf("Job UPDATE: %d %s, want admitted untouched", resp.Result.Code, resp.Result.Message)
	}
}

// TestChangedKeys: every key with the prefix that differs, each once, sorted; nil maps are
// empty ones.
func TestChangedKeys(t *testing.T) {
	tests := []struct {
		name     string
		old, new map[string]string
		want     []string
	}{
		{name: "both nil", want: []string{}},
		{name: "same", old: map[string]string{"p/a": "1", "x": "1"}, new: map[string]string{"p/a": "1", "x": "2"}, want: []string{}},
		{name: "from nil", new: map[string]string{"p/a": "1", "x": "1"}, want: []string{"k p/a (added)"}},
		{name: "to nil", old: map[string]string{"p/a": "1"}, want: []string{"k p/a (removed)"}},
		{name: "empty value is a value", old: map[string]string{"p/a": ""}, new: map[string]string{"p/a": "1"}, want: []string{"k p/a (changed)"}},
		{
			name: "all at once",
			old:  map[string]string{"p/c": "1", "p/b": "1", "p/d": "1"},
			new:  map[string]string{"p/a": "1", "p/b": "2", "p/d": "1", "q/p/e": "1"},
			want: []string{"k p/a (added)", "k p/b (changed)", "k p/c (removed)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, changedKeys("k", "p/", tt.old, tt.new)); diff != "" {
				t.Errorf("changedKeys (-want +got):\n%s", diff)
			}
		})
	}
}

// An update that adds 100,000 credential labels is refused in a message of bounded size.
func TestChangedKeysBounded(t *testing.T) {
	updated := make(map[string]string, 100000)
	for i := range 100000 {
		updated[fmt.Sprintf("p/%06d", i)] = "true"
	}
	got := changedKeys("label", "p/", nil, updated)
	if len(got) != maxChangesNamed+1 || got[maxChangesNamed] != fmt.Sprintf("%d more labels", 100000-maxChangesNamed) {
		t.Fatalf("%d entries, last %q", len(got), got[len(got)-1])
	}
	if n := len(fixedMetadataMessage("pod", got)); n > 2048 {
		t.Errorf("refusal of %d bytes", n)
	}
}
