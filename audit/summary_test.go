package audit_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credgate/credgate/audit"
)

// summarise counts recs by the breakdowns by.
func summarise(t *testing.T, recs []*audit.Record, by ...string) *audit.Summary {
	t.Helper()
	s, err := audit.NewSummary(time.Hour, by...)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		s.Add(r)
	}
	s.Finish()
	return s
}

// TestSummaryRulesAndWarnings: rules count the violations that refused; warnings, those that
// only warned or flagged, a refused record's included; a record written before violations
// carried their action counts by its enforcement; a rule counts once per record.
func TestSummaryRulesAndWarnings(t *testing.T) {
	recs := []*audit.Record{
		{Event: audit.EventDenied, Enforcement: "deny", Violations: []audit.Violation{
			{Rule: "multiple-cloud-identities", Credential: "aws-a", Message: "m", Action: "deny"},
			{Rule: "multiple-cloud-identities", Credential: "aws-b", Message: "m", Action: "deny"},
			{Rule: "multiple-cloud-identities", Credential: "aws-a", Message: "envFrom", Action: "warn"},
			{Rule: "static-credentials", Credential: "wandb", Message: "m", Action: "warn"},
			{Rule: "sensitive-namespace", Message: "m", Action: "audit"},
		}},
		{Event: audit.EventWarned, Enforcement: "warn", Violations: []audit.Violation{
			{Rule: "static-credentials", Credential: "wandb", Message: "m", Action: "warn"},
		}},
		// Written before violations carried their action.
		{Event: audit.EventDenied, Enforcement: "deny", Violations: []audit.Violation{{Rule: "admin-scoped-credential", Message: "m"}}},
		{Event: audit.EventWarned, Enforcement: "warn", Violations: []audit.Violation{{Rule: "credential-expiring", Message: "m"}}},
	}
	s := summarise(t, recs)
	if diff := cmp.Diff(map[string]int{"multiple-cloud-identities": 1, "admin-scoped-credential": 1}, s.Rules); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	wantWarnings := map[string]int{"multiple-cloud-identities": 1, "static-credentials": 2, "sensitive-namespace": 1, "credential-expiring": 1}
	if diff := cmp.Diff(wantWarnings, s.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// TestSummaryBy: a summary keeps the breakdowns asked for, and JSON holds those only (an empty
// one as {}); by default all but owner; an unknown one is an error.
func TestSummaryBy(t *testing.T) {
	fields := func(s *audit.Summary) []string {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, k := range []string{"records", "events", "rules", "warnings", "namespaces", "users", "credentials", "owners", "histogram"} {
			if _, ok := m[k]; ok {
				out = append(out, k)
			}
		}
		return out
	}
	if diff := cmp.Diff([]string{"records", "events", "rules", "warnings", "namespaces", "users", "credentials", "histogram"},
		fields(summarise(t, nil))); diff != "" {
		t.Errorf("default JSON fields (-want +got):\n%s", diff)
	}
	s := summarise(t, nil, "owner", "rule", "owner")
	if diff := cmp.Diff([]string{"records", "rules", "owners", "histogram"}, fields(s)); diff != "" {
		t.Errorf("--by owner,rule JSON fields (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"owner", "rule"}, s.By); diff != "" {
		t.Errorf("breakdowns (-want +got):\n%s", diff)
	}
	if b, _ := json.Marshal(s); !strings.Contains(string(b), `"rules":{},"owners":[]`) {
		t.Errorf("empty summary %s: want empty rules and owners, not left out", b)
	}
	if _, err := audit.NewSummary(time.Hour, "rule", "pod"); err == nil || !strings.Contains(err.Error(), `"pod"`) {
		t.Errorf("NewSummary(pod): error %v, want one naming it", err)
	}
}

// TestSummaryByOwner: records count for the workload at the top of their owner chain: a Job
// with its pods, a CronJob with its Jobs and their pods (also a pod whose record names only
// its Job, when the Job's own record names the CronJob); an object without owner counts for
// itself; namespaces keep workloads of one name apart; a cycle of owners ends.
func TestSummaryByOwner(t *testing.T) {
	owner := func(kind, name string, up *audit.Owner) *audit.Owner {
		return &audit.Owner{Kind: kind, Name: name, Owner: up}
	}
	rec := func(ev audit.Event, ns, kind, name string, o *audit.Owner, rule, action string) *audit.Record {
		return &audit.Record{Event: ev, Namespace: ns, Kind: kind, Name: name, Owner: o,
			Violations: []audit.Violation{{Rule: rule, Message: "m", Action: action}}}
	}
	nightly := owner("CronJob", "nightly", nil)
	recs := []*audit.Record{
		// A standalone Job and its pods.
		rec(audit.EventDenied, "cv", "Job", "resnet", nil, "admin-scoped-credential", "deny"),
		rec(audit.EventDenied, "cv", "Pod", "resnet-*", owner("Job", "resnet", nil), "admin-scoped-credential", "deny"),
		rec(audit.EventDenied, "cv", "Pod", "resnet-*", owner("Job", "resnet", nil), "admin-scoped-credential", "deny"),
		// A CronJob, its Job, the Job's pods: one naming the CronJob, one not.
		rec(audit.EventWarned, "ml", "CronJob", "nightly", nil, "static-credentials", "warn"),
		rec(audit.EventWarned, "ml", "Job", "nightly-29001", nightly, "static-credentials", "warn"),
		rec(audit.EventDenied, "ml", "Pod", "nightly-29001-*", owner("Job", "nightly-29001", nightly), "multiple-cloud-identities", "deny"),
		rec(audit.EventDenied, "ml", "Pod", "nightly-29001-*", owner("Job", "nightly-29001", nil), "multiple-cloud-identities", "deny"),
		// A Job of the same name in another namespace; a bare pod.
		rec(audit.EventDenied, "ml", "Pod", "resnet-*", owner("Job", "resnet", nil), "conflicting-env", "deny"),
		rec(audit.EventAudited, "ml", "Pod", "debug", nil, "sensitive-namespace", "audit"),
		// Hostile: two Jobs owning each other.
		rec(audit.EventDenied, "x", "Job", "a", owner("Job", "b", nil), "r", "deny"),
		rec(audit.EventDenied, "x", "Job", "b", owner("Job", "a", nil), "r", "deny"),
	}
	s := summarise(t, recs, "owner")
	type row struct {
		Owner    string
		Records  int
		Events   map[string]int
		Rules    map[string]int
		Warnings map[string]int
	}
	var got []row
	for _, o := range s.Owners {
		got = append(got, row{o.Namespace + " " + o.String(), o.Records, o.Events, o.Rules, o.Warnings})
	}
	want := []row{
		{"ml CronJob/nightly", 4, map[string]int{"admission_warned": 2, "admission_denied": 2},
			map[string]int{"multiple-cloud-identities": 2}, map[string]int{"static-credentials": 2}},
		{"cv Job/resnet", 3, map[string]int{"admission_denied": 3}, map[string]int{"admin-scoped-credential": 3}, map[string]int{}},
		{"x Job/a", 2, map[string]int{"admission_denied": 2}, map[string]int{"r": 2}, map[string]int{}},
		{"ml Job/resnet", 1, map[string]int{"admission_denied": 1}, map[string]int{"conflicting-env": 1}, map[string]int{}},
		{"ml Pod/debug", 1, map[string]int{"admission_audited": 1}, map[string]int{}, map[string]int{"sensitive-namespace": 1}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("owners (-want +got):\n%s", diff)
	}
	if s.Events != nil || s.Rules != nil {
		t.Errorf("--by owner counted other breakdowns: events %v, rules %v", s.Events, s.Rules)
	}
}
