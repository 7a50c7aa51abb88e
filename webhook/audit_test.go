package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/credgate/credgate/audit"
	"github.com/credgate/credgate/policies"
)

// memorySink keeps audit lines in memory; failing makes every write fail.
type memorySink struct {
	mu      sync.Mutex
	lines   [][]byte
	failing bool
}

func (s *memorySink) Write(_ context.Context, line []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing {
		return errors.New("disk full")
	}
	s.lines = append(s.lines, bytes.Clone(line))
	return nil
}

func (s *memorySink) bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Join(s.lines, []byte("\n"))
}

func (s *memorySink) records(t *testing.T) []audit.Record {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]audit.Record, len(s.lines))
	for i, l := range s.lines {
		if err := json.Unmarshal(l, &out[i]); err != nil {
			t.Fatalf("record %s: %v", l, err)
		}
	}
	return out
}

// TestAuditRecords: each decision writes the record docs/audit.md describes — attributed to the
// user, the workload and its owner, with every violation and the policy revision — and the
// failure of the sink is refused or admitted as configured.
func TestAuditRecords(t *testing.T) {
	rev, err := builtinPolicies()
	if err != nil {
		t.Fatal(err)
	}
	trainingOwner := &audit.Owner{Kind: "Job", Name: "train-llm"}
	tests := []struct {
		name        string
		fixture     string
		kind        string
		edit        func(req map[string]any)
		validate    bool
		allowed     bool
		enforcement policies.Enforcement
		failing     bool
		onError     audit.OnError
		owners      OwnerResolver
		want        []audit.Record // without times and revisions
		wantCode    int32
	}{
		{
			name: "refusal of an unknown credential", fixture: "pod-unknown-credential.json", kind: "Pod", wantCode: 403,
			want: []audit.Record{{Event: audit.EventDenied, Enforcement: "deny", Kind: "Pod"}},
		},
		{
			name: "warning: static AWS keys", fixture: "pod-training.json", kind: "Pod", wantCode: 200,
			want: []audit.Record{{Event: audit.EventWarned, Enforcement: "warn", Kind: "Pod", Owner: trainingOwner}},
		},
		{
			name: "warning: the CronJob above the Job is named", fixture: "pod-training.json", kind: "Pod", wantCode: 200,
			owners: staticOwners{"Job/train-llm": {Kind: "CronJob", Name: "nightly-train"}},
			want: []audit.Record{{Event: audit.EventWarned, Enforcement: "warn", Kind: "Pod",
				Owner: &audit.Owner{Kind: "Job", Name: "train-llm", Owner: &audit.Owner{Kind: "CronJob", Name: "nightly-train"}}}},
		},
		{
			name: "audited: static AWS keys enforced as audit", fixture: "pod-training.json", kind: "Pod", wantCode: 200,
			enforcement: policies.Enforcement{"static-credentials": policies.ActionAudit},
			want:        []audit.Record{{Event: audit.EventAudited, Enforcement: "audit", Kind: "Pod", Owner: trainingOwner}},
		},
		{
			name: "allowed: not recorded by default", fixture: "pod-labelled.json", kind: "Pod", wantCode: 200,
		},
		{
			name: "allowed: recorded when asked", fixture: "pod-labelled.json", kind: "Pod", wantCode: 200, allowed: true,
			want: []audit.Record{{Event: audit.EventAllowed, Enforcement: "allow", Kind: "Pod"}},
		},
		{
			name: "unlabelled pod: never recorded", fixture: "pod-unlabelled.json", kind: "Pod", wantCode: 200, allowed: true,
		},
		{
			name: "validating handler: a warning is the mutating handler's to record", fixture: "pod-training.json", kind: "Pod",
			validate: true, wantCode: 200,
		},
		{
			name: "validating handler: records its refusal", fixture: "pod-unknown-credential.json", kind: "Pod",
			validate: true, wantCode: 403,
			want: []audit.Record{{Event: audit.EventDenied, Enforcement: "deny", Kind: "Pod"}},
		},
		{
			name: "sink fails, refuse: the warned pod is not admitted", fixture: "pod-training.json", kind: "Pod",
			failing: true, wantCode: 500,
		},
		{
			name: "sink fails, admit: the warned pod is admitted", fixture: "pod-training.json", kind: "Pod",
			failing: true, onError: audit.Admit, wantCode: 200,
		},
		{
			name: "sink fails: a refusal stays a refusal", fixture: "pod-unknown-credential.json", kind: "Pod",
			failing: true, onError: audit.Admit, wantCode: 403,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := readFixture(t, tt.fixture)
			if tt.edit != nil {
				body = editRequest(t, body, tt.edit)
			}
			r := newReviewer(t, testStore())
			r.Enforcement = tt.enforcement
			m := newHandler(t, tt.kind, r)
			m.ValidateOnly = tt.validate
			m.Owners = tt.owners
			sink := &memorySink{failing: tt.failing}
			now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
			m.Audit = &audit.Auditor{Sinks: []audit.Sink{sink}, Allowed: tt.allowed, OnError: tt.onError, Now: func() time.Time { return now }}
			resp, _ := serve(t, newWebhook(t, m, newLogger(&logBuffer{})), body)
			if resp.Result.Code != tt.wantCode {
				t.Fatalf("code %d, want %d: %s", resp.Result.Code, tt.wantCode, resp.Result.Message)
			}
			req := requestOf(t, body)
			got := sink.records(t)
			for i := range tt.want {
				w := &tt.want[i]
				w.Version, w.Time, w.RequestUID, w.PolicyRevision = audit.SchemaVersion, now, string(req.UID), rev.ID()
				w.User, w.Groups, w.Namespace, w.Operation = req.UserInfo.Username, req.UserInfo.Groups, req.Namespace, string(req.Operation)
			}
			// Names, credentials and violations are checked below, against the response.
			ignore := cmpopts.IgnoreFields(audit.Record{}, "Name", "Credentials", "Violations")
			if diff := cmp.Diff(tt.want, got, ignore, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("records (-want +got):\n%s", diff)
			}
			for _, rec := range got {
				if rec.Name == "" || len(rec.Credentials) == 0 {
					t.Errorf("record without the workload's name or its credentials: %+v", rec)
				}
				for _, v := range rec.Violations {
					if v.Rule == "" || v.Action == "" {
						t.Errorf("violation without rule or action: %+v", v)
					}
					if v.Action == "deny" && !bytes.Contains([]byte(resp.Result.Message), []byte(v.Message)) {
						t.Errorf("denied violation %q is not in the refusal %q", v.Message, resp.Result.Message)
					}
				}
				if rec.Event != audit.EventAllowed && len(rec.Violations) == 0 {
					t.Errorf("%s record without violations", rec.Event)
				}
			}
		})
	}
}

// staticOwners resolves owners from a map keyed "Kind/name".
type staticOwners map[string]*audit.Owner

func (s staticOwners) Owner(_ context.Context, _ string, ref metav1.OwnerReference) *audit.Owner {
	return s[ref.Kind+"/"+ref.Name]
}

// TestAuditRedactsQuotedValues: a user policy that quotes a literal value the pod sets does
// not write it into the audit record or the Event, nor into the refusal (which a controller
// copies into its own Events: TestRefusalMessageRedacted).
func TestAuditRedactsQuotedValues(t *testing.T) {
	rev := withUserPolicy(t, "user/quotes.rego", `package credgate.admission

deny contains {"rule": "quotes-values", "message": sprintf("container %s sets %s=%s", [c.name, e.name, e.value])} if {
	some c in input.pod.spec.containers
	some e in c.env
	e.name == "WANDB_PROJECT"
}
`)
	m := newHandler(t, "Pod", reviewerFor(rev, testStore()))
	sink := &memorySink{}
	var events eventLog
	m.Audit, m.Events = &audit.Auditor{Sinks: []audit.Sink{sink}}, &events
	resp, _ := serve(t, newWebhook(t, m, newLogger(&logBuffer{})), readFixture(t, "pod-training.json"))
	if resp.Allowed || !strings.Contains(resp.Result.Message, "[quotes-values]") {
		t.Fatalf("the user policy did not refuse: %s", resp.Result.Message)
	}
	if b := sink.bytes(); bytes.Contains(b, []byte("llm-sweeps")) || !bytes.Contains(b, []byte("[redacted]")) {
		t.Errorf("audit record not redacted: %s", b)
	}
	if len(events.events) != 1 || strings.Contains(events.events[0].Note, "llm-sweeps") {
		t.Errorf("event not redacted: %+v", events.events)
	}
}
