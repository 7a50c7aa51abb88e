package webhook

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credgate/credgate/audit"
)

// quotingPolicy is a careless user policy: it refuses or warns about a
// variable and quotes its value, from any container of the pod — init, ordinary or ephemeral.
const quotingPolicy = `package credgate.admission

quoted(name) := [sprintf("container %s sets %s=%s", [c.name, e.name, e.value]) |
	some field in ["initContainers", "containers", "ephemeralContainers"]
	some c in object.get(input.pod.spec, field, [])
	some e in object.get(c, "env", [])
	e.name == name
]

deny contains {"rule": "quotes-deny", "message": msg} if {
	some msg in quoted("QUOTE_DENY")
}

warn contains {"rule": "quotes-warn", "message": msg} if {
	some msg in quoted("QUOTE_WARN")
}
`

// Values the pod sets, each at least 8 characters (shorter ones are not redacted). One starts
// another: the longer must be hidden whole, not its tail left showing.
const (
	valueDeny      = "rdct-deny-value-5c1e"
	valueWarn      = "rdct-warn-value-0f7a"
	valueInit      = "rdct-init-value-93d2"
	valueEphemeral = "rdct-ephemeral-value-6b4f"
	valueJob       = "rdct-job-template-value-2e8c"
	valueShort     = "rdct-overlap"
	valueLong      = "rdct-overlap-and-more-71aa"
)

// TestRefusalMessageRedacted: what credgate answers the API server — the refusal, which a
// controller copies into its own Events (the Job controller's FailedCreate), and the warnings
// kubectl prints — hides every literal env value the pod sets, wherever a user policy quoted
// it from, exactly as the audit record and credgate's Event do.
func TestRefusalMessageRedacted(t *testing.T) {
	rev := withUserPolicy(t, "user/quotes.rego", quotingPolicy)
	env := func(kv ...string) []any {
		var out []any
		for i := 0; i < len(kv); i += 2 {
			out = append(out, map[string]any{"name": kv[i], "value": kv[i+1]})
		}
		return out
	}
	podSpec := func(req map[string]any) map[string]any {
		return req["object"].(map[string]any)["spec"].(map[string]any)
	}
	container := func(req map[string]any) map[string]any {
		return podSpec(req)["containers"].([]any)[0].(map[string]any)
	}
	tests := []struct {
		name     string
		kind     string
		fixture  string
		validate bool
		edit     func(req map[string]any)
		// values the request carries and no response may show.
		values []string
		want   outcome
		// wantMsg are substrings of the refusal; wantWarnings the warnings, in full.
		wantMsg      []string
		wantWarnings []string
	}{
		{
			name: "refusal quoting a container's value", kind: "Pod", fixture: "pod-labelled.json",
			edit:    func(req map[string]any) { container(req)["env"] = env("QUOTE_DENY", valueDeny) },
			values:  []string{valueDeny},
			want:    outcome{Code: 403},
			wantMsg: []string{`[quotes-deny] container trainer sets QUOTE_DENY=[redacted]`},
		},
		{
			name: "validating: refusal quoting a container's value", kind: "Pod", fixture: "pod-labelled.json", validate: true,
			edit:    func(req map[string]any) { container(req)["env"] = env("QUOTE_DENY", valueDeny) },
			values:  []string{valueDeny},
			want:    outcome{Code: 403},
			wantMsg: []string{`[quotes-deny] container trainer sets QUOTE_DENY=[redacted]`},
		},
		{
			name: "refusal quoting an init container's value", kind: "Pod", fixture: "pod-labelled.json",
			edit: func(req map[string]any) {
				podSpec(req)["initContainers"] = []any{map[string]any{"name": "fetch", "image": "fetch:1", "env": env("QUOTE_DENY", valueInit)}}
			},
			values:  []string{valueInit},
			want:    outcome{Code: 403},
			wantMsg: []string{`container fetch sets QUOTE_DENY=[redacted]`},
		},
		{
			// The API server refuses ephemeral containers at create, but only after the
			// webhooks: a policy sees them, and may quote them.
			name: "refusal quoting an ephemeral container's value", kind: "Pod", fixture: "pod-labelled.json",
			edit: func(req map[string]any) {
				podSpec(req)["ephemeralContainers"] = []any{map[string]any{"name": "debug", "image": "debug:1", "env": env("QUOTE_DENY", valueEphemeral)}}
			},
			values:  []string{valueEphemeral},
			want:    outcome{Code: 403},
			wantMsg: []string{`container debug sets QUOTE_DENY=[redacted]`},
		},
		{
			name: "refusal quoting values of which one starts the other", kind: "Pod", fixture: "pod-labelled.json",
			edit: func(req map[string]any) {
				container(req)["env"] = env("A_SHORT", valueShort, "QUOTE_DENY", valueLong)
			},
			values:  []string{valueShort, valueLong, strings.TrimPrefix(valueLong, valueShort)},
			want:    outcome{Code: 403},
			wantMsg: []string{`container trainer sets QUOTE_DENY=[redacted]`},
		},
		{
			name: "refusal of a Job quoting its pod template's value", kind: "Job", fixture: "job-labelled.json",
			edit: func(req map[string]any) {
				tmpl := req["object"].(map[string]any)["spec"].(map[string]any)["template"].(map[string]any)
				tmpl["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)["env"] = env("QUOTE_DENY", valueJob)
			},
			values:  []string{valueJob},
			want:    outcome{Code: 403},
			wantMsg: []string{`credgate refused the Job: [quotes-deny] container trainer sets QUOTE_DENY=[redacted]`},
		},
		{
			name: "warning quoting a container's value", kind: "Pod", fixture: "pod-labelled.json",
			edit:         func(req map[string]any) { container(req)["env"] = env("QUOTE_WARN", valueWarn) },
			values:       []string{valueWarn},
			want:         outcome{Allowed: true, Code: 200, Patched: true},
			wantWarnings: []string{`[quotes-warn] container trainer sets QUOTE_WARN=[redacted]`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := editRequest(t, readFixture(t, tt.fixture), tt.edit)
			for _, v := range tt.values {
				if !bytes.Contains(body, []byte(v)) {
					t.Fatalf("the request does not carry %s", v)
				}
			}
			m := newHandler(t, tt.kind, reviewerFor(rev, testStore()))
			m.ValidateOnly = tt.validate
			sink := &memorySink{}
			var events eventLog
			m.Audit, m.Events = &audit.Auditor{Sinks: []audit.Sink{sink}}, &events
			resp, raw := serve(t, newWebhook(t, m, newLogger(&logBuffer{})), body)

			checkOutcome(t, resp, tt.want, tt.wantMsg)
			if diff := cmp.Diff(tt.wantWarnings, resp.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			if !resp.Allowed && (len(events.events) != 1 || events.events[0].Note != resp.Result.Message) {
				t.Errorf("events %+v, want one whose note is the refusal %q", events.events, resp.Result.Message)
			}
			for _, v := range tt.values {
				if bytes.Contains(raw, []byte(v)) {
					t.Errorf("the response contains %s:\n%s", v, raw)
				}
				if bytes.Contains(sink.bytes(), []byte(v)) {
					t.Errorf("an audit record contains %s:\n%s", v, sink.bytes())
				}
				if ev := fmt.Sprintf("%+v", events.events); strings.Contains(ev, v) {
					t.Errorf("an event contains %s: %s", v, ev)
				}
			}
		})
	}
}
