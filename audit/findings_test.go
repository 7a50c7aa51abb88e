package audit_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credgate/credgate/audit"
)

// TestFindings: violations of one rule, action and message merge into one finding naming
// every credential and policy; refusals come first, then warnings, then audited violations,
// each in the order written; a deny and a warn of the same rule stay apart.
func TestFindings(t *testing.T) {
	const same = "the pod would hold 2 aws identities (credential aws-a, credential aws-b): request only one"
	r := &audit.Record{Event: audit.EventDenied, Enforcement: "deny", Violations: []audit.Violation{
		{Rule: "sensitive-namespace", Message: "flagged", Action: "audit"},
		{Rule: "static-credentials", Credential: "wandb", Message: "credential wandb: static keys", Action: "warn"},
		{Rule: "multiple-cloud-identities", Credential: "aws-a", Message: "envFrom may set AWS variables", Action: "warn"},
		{Rule: "multiple-cloud-identities", Credential: "aws-a", Message: same, Action: "deny", Policy: "baseline"},
		{Rule: "multiple-cloud-identities", Credential: "aws-b", Message: same, Action: "deny", Policy: "baseline"},
		{Rule: "multiple-cloud-identities", Credential: "aws-b", Message: same, Action: "deny", Policy: "team-ml"},
		{Rule: "admin-scoped-credential", Credential: "aws-a", Message: "admin", Action: "deny"},
		{Rule: "multiple-cloud-identities", Credential: "aws-a", Message: "another message", Action: "deny"},
	}}
	want := []audit.Finding{
		{Action: "deny", Rule: "multiple-cloud-identities", Message: same, Credentials: []string{"aws-a", "aws-b"}, Policies: []string{"baseline", "team-ml"}},
		{Action: "deny", Rule: "admin-scoped-credential", Message: "admin", Credentials: []string{"aws-a"}},
		{Action: "deny", Rule: "multiple-cloud-identities", Message: "another message", Credentials: []string{"aws-a"}},
		{Action: "warn", Rule: "static-credentials", Message: "credential wandb: static keys", Credentials: []string{"wandb"}},
		{Action: "warn", Rule: "multiple-cloud-identities", Message: "envFrom may set AWS variables", Credentials: []string{"aws-a"}},
		{Action: "audit", Rule: "sensitive-namespace", Message: "flagged"},
	}
	got := r.Findings()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("findings (-want +got):\n%s", diff)
	}
	var refused []string
	for _, f := range got {
		if f.Refused() {
			refused = append(refused, f.Rule)
		}
	}
	if diff := cmp.Diff([]string{"multiple-cloud-identities", "admin-scoped-credential", "multiple-cloud-identities"}, refused); diff != "" {
		t.Errorf("refusing findings (-want +got):\n%s", diff)
	}
}

// TestActionOfRecordWithoutActions: a violation without its action (a record written before
// violations carried one) takes the record's enforcement, or lacking that its event's.
func TestActionOfRecordWithoutActions(t *testing.T) {
	v := audit.Violation{Rule: "r", Message: "m"}
	for _, tt := range []struct {
		r    audit.Record
		want string
	}{
		{audit.Record{Event: audit.EventDenied, Enforcement: "deny"}, "deny"},
		{audit.Record{Event: audit.EventWarned, Enforcement: "warn"}, "warn"},
		{audit.Record{Event: audit.EventDenied}, "deny"},
		{audit.Record{Event: audit.EventWarned}, "warn"},
		{audit.Record{Event: audit.EventAudited}, "audit"},
	} {
		if got := tt.r.ActionOf(&v); got != tt.want {
			t.Errorf("event %s, enforcement %q: action %q, want %q", tt.r.Event, tt.r.Enforcement, got, tt.want)
		}
		tt.r.Violations = []audit.Violation{v}
		if f := tt.r.Findings(); len(f) != 1 || f[0].Action != tt.want || f[0].Refused() != (tt.want == "deny") {
			t.Errorf("event %s, enforcement %q: findings %+v, want one of action %q", tt.r.Event, tt.r.Enforcement, f, tt.want)
		}
	}
	warned := audit.Violation{Rule: "r", Message: "m", Action: "warn"}
	if got := (&audit.Record{Event: audit.EventDenied, Enforcement: "deny"}).ActionOf(&warned); got != "warn" {
		t.Errorf("a violation's own action %q was overridden by the record's: %q", warned.Action, got)
	}
}

// TestViolationPolicy: the policy that produced a violation is read from and written to a
// record's JSON, and left out when there is none.
func TestViolationPolicy(t *testing.T) {
	line := `{"v":1,"time":"2026-11-23T10:00:00Z","event":"admission_denied","violations":[` +
		`{"rule":"no-public-buckets","message":"m","action":"deny","policy":"team-ml-storage"},` +
		`{"rule":"admin-scoped-credential","message":"m","action":"deny"}],"enforcement":"deny"}`
	var got []*audit.Record
	if err := audit.Read(strings.NewReader(line), "s", func(r *audit.Record) error { got = append(got, r); return nil },
		func(p audit.Problem) { t.Error(p) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Violations[0].Policy != "team-ml-storage" || got[0].Violations[1].Policy != "" {
		t.Fatalf("records %+v: want the first violation's policy read", got)
	}
	if f := got[0].Findings(); f[0].Policies[0] != "team-ml-storage" {
		t.Errorf("findings %+v lack the policy", f)
	}
	b, err := json.Marshal(got[0])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"action":"deny","policy":"team-ml-storage"}`) || strings.Count(string(b), `"policy"`) != 1 {
		t.Errorf("written back as %s: want the policy of the first violation only", b)
	}
}
