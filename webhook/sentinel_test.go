package webhook

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/credgate/credgate/audit"
	"github.com/credgate/credgate/policies"
)

// sentinels are the secret-looking values of testdata/pod-sentinels.json, one for every place a
// user can put a secret in a pod: a literal env value, a literal under the name of a variable a
// credential injects (in a container and in an init container, which conflict; and one the
// credential lets the pod override), an argument, a probe header, annotations (kubectl's
// last-applied-configuration repeats the whole spec), a forged credgate.dev/injected
// annotation, and a field no version of k8s.io/api knows.
var sentinels = []string{
	"sntl-env-literal-4f9c0a",
	"sntl-env-wandb-key-7d21e3",
	"sntl-env-wandb-project-0b5e",
	"sntl-env-init-hf-token-93b4",
	"sntl-arg-token-1c6f58",
	"sntl-probe-header-8e1b",
	"sntl-annotation-db-password-e08a",
	"sntl-last-applied-5b7d",
	"sntl-forged-injected-2a4e",
	"sntl-future-field-c3d9",
}

// secretSentinel is the value of a Secret sent to credgate by a misrouted webhook configuration.
const secretSentinel = "sntl-secret-data-6f0e"

// TestNoSecretInResponseOrLog sends requests carrying secret values through every outcome the
// webhook has — admitted with a patch and warnings, refused by credgate or by a policy (whose
// input holds the whole pod), bad input, internal error; mutating and validating — and checks
// that no value reaches the response (message, warnings, patch) or any log line, credgate's or
// controller-runtime's, at any verbosity. Label values and container names are not secret:
// denials may quote them.
func TestNoSecretInResponseOrLog(t *testing.T) {
	podSpec := func(req map[string]any) map[string]any {
		return req["object"].(map[string]any)["spec"].(map[string]any)
	}
	labels := func(req map[string]any) map[string]any {
		return req["object"].(map[string]any)["metadata"].(map[string]any)["labels"].(map[string]any)
	}
	secret := map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata":   map[string]any{"name": "wandb-secret", "namespace": testNamespace},
		"type":       "Opaque",
		"data":       map[string]any{"api-key": base64.StdEncoding.EncodeToString([]byte(secretSentinel))},
		"stringData": map[string]any{"token": secretSentinel},
	}
	warnConflicts := policies.Enforcement{"conflicting-env": policies.ActionWarn}
	secretValues := []string{secretSentinel, base64.StdEncoding.EncodeToString([]byte(secretSentinel))}
	tests := []struct {
		name        string
		kind        string
		validate    bool
		enforcement policies.Enforcement
		edit        func(req map[string]any)
		store       func() *fakeStore
		// truncate cuts the body off after the last sentinel, making it malformed JSON.
		truncate bool
		// carries are the secret values the request must carry; nil: sentinels.
		carries []string
		want    outcome
		// warnings is how many warnings the response has: each names a variable whose value
		// the pod sets itself.
		warnings int
	}{
		{
			name: "refused by policy: the pod sets credential variables",
			kind: "Pod",
			want: outcome{Code: 403},
		},
		{
			name:        "admitted with a patch and warnings",
			kind:        "Pod",
			enforcement: warnConflicts,
			want:        outcome{Allowed: true, Code: 200, Patched: true},
			// conflicting-env's and mutate's, for WANDB_API_KEY and HF_TOKEN; static-credentials'.
			warnings: 5,
		},
		{
			name:     "validating: refused by policy",
			kind:     "Pod",
			validate: true,
			want:     outcome{Code: 403},
		},
		{
			name:        "validating: admitted",
			kind:        "Pod",
			validate:    true,
			enforcement: warnConflicts,
			want:        outcome{Allowed: true, Code: 200},
		},
		{
			name: "refused: credential not ready",
			kind: "Pod",
			edit: func(req map[string]any) { labels(req)["credentials.credgate.dev/mlflow"] = "true" },
			want: outcome{Code: 403},
		},
		{
			name: "refused for a label value",
			kind: "Pod",
			edit: func(req map[string]any) { labels(req)["credentials.credgate.dev/wandb"] = "yes" },
			want: outcome{Code: 403},
		},
		{
			name: "refused for an unknown credential",
			kind: "Pod",
			edit: func(req map[string]any) { labels(req)["credentials.credgate.dev/openai"] = "true" },
			want: outcome{Code: 403},
		},
		{
			name: "bad input: no containers",
			kind: "Pod",
			edit: func(req map[string]any) {
				// The init container keeps its secret; the containers move to a field credgate
				// does not know, so the request still carries theirs.
				podSpec(req)["futureContainers"] = podSpec(req)["containers"]
				podSpec(req)["containers"] = []any{}
			},
			want: outcome{Code: 400},
		},
		{
			name: "bad input: a field of the wrong type",
			kind: "Pod",
			edit: func(req map[string]any) { podSpec(req)["terminationGracePeriodSeconds"] = "thirty" },
			want: outcome{Code: 400},
		},
		{
			name: "bad input: an env value of the wrong type",
			kind: "Pod",
			edit: func(req map[string]any) {
				ctr := podSpec(req)["containers"].([]any)[0].(map[string]any)
				ctr["env"].([]any)[0].(map[string]any)["value"] = map[string]any{"nested": "sntl-env-literal-4f9c0a"}
			},
			want: outcome{Code: 400},
		},
		{
			name: "bad input: a pod sent to the job endpoint",
			kind: "Job",
			want: outcome{Code: 400},
		},
		{
			name:     "bad input: malformed JSON",
			kind:     "Pod",
			truncate: true,
			want:     outcome{Code: 400},
		},
		{
			name: "bad input: a Secret sent to the pod endpoint",
			kind: "Pod",
			edit: func(req map[string]any) {
				req["kind"] = map[string]any{"group": "", "version": "v1", "kind": "Secret"}
				req["resource"] = map[string]any{"group": "", "version": "v1", "resource": "secrets"}
				req["object"] = secret
			},
			carries: secretValues,
			want:    outcome{Code: 400},
		},
		{
			name:    "bad input: a Secret under a Pod request",
			kind:    "Pod",
			edit:    func(req map[string]any) { req["object"] = secret },
			carries: secretValues,
			want:    outcome{Code: 400},
		},
		{
			name:  "internal error",
			kind:  "Pod",
			store: func() *fakeStore { return &fakeStore{Store: testStore(), getErr: errCacheTimeout} },
			want:  outcome{Code: 500},
		},
		{
			name: "not mutated: an UPDATE",
			kind: "Pod",
			edit: func(req map[string]any) { req["operation"] = "UPDATE"; req["oldObject"] = req["object"] },
			want: outcome{Allowed: true, Code: 200},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := readFixture(t, "pod-sentinels.json")
			if tt.edit != nil {
				body = editRequest(t, body, tt.edit)
			}
			secrets := slices.Concat(secretValues, sentinels)
			if tt.truncate {
				last := 0
				for _, s := range secrets {
					last = max(last, bytes.LastIndex(body, []byte(s))+len(s))
				}
				body = body[:last]
			}
			// A test whose request carries no secret proves nothing.
			carries := tt.carries
			if carries == nil {
				carries = sentinels
			}
			for _, s := range carries {
				if !bytes.Contains(body, []byte(s)) {
					t.Fatalf("the request does not carry %s", s)
				}
			}
			var store *fakeStore
			if tt.store != nil {
				store = tt.store()
			} else {
				store = &fakeStore{Store: testStore()}
			}

			r := newReviewer(t, store)
			r.Enforcement = tt.enforcement
			m := newHandler(t, tt.kind, r)
			m.ValidateOnly = tt.validate
			var records memorySink
			m.Audit = &audit.Auditor{Sinks: []audit.Sink{&records}, Allowed: true}
			var events eventLog
			m.Events = &events
			reg := prometheus.NewRegistry()
			metrics, err := NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			m.Metrics = metrics
			var logs logBuffer
			resp, raw := serve(t, newWebhook(t, m, newLogger(&logs)), body)
			for _, s := range secrets {
				if bytes.Contains(records.bytes(), []byte(s)) {
					t.Errorf("an audit record contains %s:\n%s", s, records.bytes())
				}
				if ev := fmt.Sprintf("%+v", events.events); strings.Contains(ev, s) {
					t.Errorf("an event contains %s: %s", s, ev)
				}
				mfs, err := reg.Gather()
				if err != nil {
					t.Fatal(err)
				}
				if ms := fmt.Sprint(mfs); strings.Contains(ms, s) {
					t.Errorf("a metric contains %s: %s", s, ms)
				}
			}

			got := outcomeOf(resp)
			got.UID = ""
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Fatalf("the request did not take the path under test (-want +got):\n%s\nmessage: %s", diff, resp.Result.Message)
			}
			if len(resp.Warnings) != tt.warnings {
				t.Errorf("%d warnings, want %d: %q", len(resp.Warnings), tt.warnings, resp.Warnings)
			}
			if !strings.Contains(logs.String(), `"msg"="wrote response"`) {
				t.Fatalf("the log was not captured:\n%s", logs.String())
			}
			for _, s := range secrets {
				if bytes.Contains(raw, []byte(s)) {
					t.Errorf("the response contains %s:\n%s", s, raw)
				}
				// The patch travels base64-encoded: look in the decoded one too.
				if bytes.Contains(resp.Patch, []byte(s)) {
					t.Errorf("the patch contains %s:\n%s", s, resp.Patch)
				}
				if strings.Contains(logs.String(), s) {
					t.Errorf("the log contains %s:\n%s", s, logs.String())
				}
			}
		})
	}
}
