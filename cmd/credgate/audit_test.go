package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func record(uid, time, event, ns, user, rule string) string {
	return `{"v":1,"time":"` + time + `","event":"admission_` + event + `","requestUID":"` + uid + `","user":"` + user +
		`","namespace":"` + ns + `","kind":"Pod","name":"p-` + uid + `","credentials":["wandb"],"violations":[{"rule":"` + rule +
		`","message":"m","action":"deny"}],"enforcement":"deny"}` + "\n"
}

// TestAuditCommand reads a rotated audit file and standard input through credgate audit.
func TestAuditCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	files := map[string]string{
		path + ".2": record("1", "2026-11-23T08:00:00Z", "denied", "ml", "alice", "admin-scoped-credential"),
		path + ".1": record("2", "2026-11-23T09:00:00Z", "warned", "ml", "bob", "static-credentials") + "garbage\n",
		path:        record("3", "2026-11-23T10:00:00Z", "denied", "cv", "alice", "conflicting-env"),
	}
	for name, content := range files {
		if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	uids := func(out string) []string {
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if i := strings.Index(l, `"requestUID":"`); i >= 0 {
				got = append(got, l[i+len(`"requestUID":"`):][:1])
			}
		}
		return got
	}
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantCode   int
		wantUIDs   []string // of -o json output
		wantStdout []string
		wantStderr string
	}{
		{name: "rotated files, oldest first", args: []string{path, "-o", "json"}, wantUIDs: []string{"1", "2", "3"},
			wantStderr: "audit.log.1:2: not JSON"},
		{name: "filters", args: []string{path, "-o", "json", "--user", "alice", "--event", "denied", "--since", "2026-11-23T09:30:00Z"},
			wantUIDs: []string{"3"}},
		{name: "rule", args: []string{path, "-o", "json", "--rule", "static-credentials"}, wantUIDs: []string{"2"}},
		{name: "stdin", args: []string{"-o", "json", "-n", "ml"}, stdin: files[path+".2"] + `{"level":"info","msg":"log line"}` + "\n",
			wantUIDs: []string{"1"}},
		{name: "table", args: []string{path}, wantStdout: []string{"TIME", "Pod/p-3", "conflicting-env"}},
		{name: "yaml", args: []string{path, "-o", "yaml", "--namespace", "cv"}, wantStdout: []string{"requestUID: \"3\"", "rule: conflicting-env"}},
		{name: "summary", args: []string{"summary", path}, wantStdout: []string{"3 records", "alice  2", "PER 1h0m0s"}},
		{name: "summary json", args: []string{"summary", path, "-o", "json"}, wantStdout: []string{`"records": 3`, `"histogram"`}},
		{name: "missing file", args: []string{filepath.Join(dir, "nope.log")}, wantCode: 2, wantStderr: "no such file"},
		{name: "bad since", args: []string{path, "--since", "last week"}, wantCode: 2, wantStderr: "neither a duration"},
		{name: "bad event", args: []string{path, "--event", "refused"}, wantCode: 2, wantStderr: "use denied, warned"},
		{name: "bad output", args: []string{path, "-o", "xml"}, wantCode: 2, wantStderr: `--output "xml"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), append([]string{"audit"}, tt.args...), strings.NewReader(tt.stdin), &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit code %d, want %d\nstderr: %s", code, tt.wantCode, stderr.String())
			}
			if tt.wantUIDs != nil {
				if diff := cmp.Diff(tt.wantUIDs, uids(stdout.String())); diff != "" {
					t.Errorf("records (-want +got):\n%s\n%s", diff, stdout.String())
				}
			}
			for _, s := range tt.wantStdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout.String())
				}
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantStderr, stderr.String())
			}
		})
	}
}

// whySample is a denial that also carries a warning and an audited violation, two credentials
// tripping one rule with one message, a record without "v", one written before violations
// carried their action, a message with control characters, and a log line.
const whySample = `{"level":"info","msg":"policies loaded"}
{"v":1,"time":"2026-11-23T10:00:00Z","event":"admission_denied","requestUID":"1","user":"system:serviceaccount:kube-system:job-controller","namespace":"ml-team","kind":"Pod","name":"train-42-*","owner":{"kind":"Job","name":"train-42","owner":{"kind":"CronJob","name":"nightly"}},"credentials":["aws-a","aws-b","wandb"],"violations":[{"rule":"sensitive-namespace","message":"flagged namespace","action":"audit"},{"rule":"static-credentials","credential":"wandb","message":"credential wandb: static keys","action":"warn"},{"rule":"multiple-cloud-identities","credential":"aws-a","message":"the pod would hold 2 aws identities: request only one","action":"deny","policy":"baseline"},{"rule":"multiple-cloud-identities","credential":"aws-b","message":"the pod would hold 2 aws identities: request only one","action":"deny","policy":"baseline"}],"enforcement":"deny"}
{"time":"2026-11-23T10:05:00Z","event":"admission_warned","requestUID":"2","user":"alice","namespace":"ml-team","kind":"Job","name":"train-43","owner":{"kind":"CronJob","name":"nightly"},"credentials":["wandb"],"violations":[{"rule":"static-credentials","credential":"wandb","message":"credential wandb: static keys","action":"warn"}],"enforcement":"warn"}
{"v":1,"time":"2026-11-23T10:10:00Z","event":"admission_denied","requestUID":"3","user":"bob","namespace":"cv","kind":"Job","name":"resnet","credentials":["aws-admin"],"violations":[{"rule":"admin-scoped-credential","credential":"aws-admin","message":"too wide"}],"enforcement":"deny"}
{"v":1,"time":"2026-11-23T10:11:00Z","event":"admission_denied","requestUID":"4","user":"system:serviceaccount:kube-system:job-controller","namespace":"cv","kind":"Pod","name":"resnet-*","owner":{"kind":"Job","name":"resnet"},"credentials":["aws-admin"],"violations":[{"rule":"admin-scoped-credential","credential":"aws-admin","message":"line one\nline two\u001b[31m red","action":"deny"}],"enforcement":"deny"}
`

// columns cuts a table row at the columns of its header: the tabwriter starts each cell where
// its header starts.
func columns(t *testing.T, header, row string) map[string]string {
	t.Helper()
	var names []string
	var starts []int
	for i := 0; i < len(header); {
		j := strings.Index(header[i:], "  ")
		name := header[i:]
		if j >= 0 {
			name = header[i : i+j]
		}
		names, starts = append(names, name), append(starts, i)
		if j < 0 {
			break
		}
		i += j
		for i < len(header) && header[i] == ' ' {
			i++
		}
	}
	out := map[string]string{}
	for k, name := range names {
		end := len(row)
		if k+1 < len(starts) {
			end = min(starts[k+1], len(row))
		}
		if starts[k] < len(row) {
			out[name] = strings.TrimSpace(row[starts[k]:end])
		}
	}
	return out
}

func runAudit(t *testing.T, stdin string, args ...string) (string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), append([]string{"audit"}, args...), strings.NewReader(stdin), &stdout, &stderr); code != 0 {
		t.Fatalf("credgate audit %v: exit code %d\nstderr: %s", args, code, stderr.String())
	}
	return stdout.String(), stderr.String()
}

// TestAuditTableSeparatesWarnings: RULES holds the rules that refused, WARNINGS those that
// rode along; a record without "v" is listed; the log line is counted on stderr.
func TestAuditTableSeparatesWarnings(t *testing.T) {
	out, stderr := runAudit(t, whySample)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 5 {
		t.Fatalf("%d lines, want a header and four records:\n%s", len(lines), out)
	}
	want := []map[string]string{
		{"OBJECT": "Pod/train-42-*", "RULES": "multiple-cloud-identities", "WARNINGS": "static-credentials,sensitive-namespace"},
		{"OBJECT": "Job/train-43", "RULES": "-", "WARNINGS": "static-credentials"},
		{"OBJECT": "Job/resnet", "RULES": "admin-scoped-credential", "WARNINGS": "-"},
		{"OBJECT": "Pod/resnet-*", "RULES": "admin-scoped-credential", "WARNINGS": "-"},
	}
	for i, w := range want {
		got := columns(t, lines[0], lines[i+1])
		for k, v := range w {
			if got[k] != v {
				t.Errorf("row %d: %s %q, want %q\n%s", i+1, k, got[k], v, out)
			}
		}
	}
	if !strings.Contains(stderr, "1 JSON line(s) skipped as not audit records") {
		t.Errorf("stderr %q does not count the log line", stderr)
	}
}

// TestAuditWide: -o wide prints each record's findings beneath it, one line each, refusals
// first; a message two credentials tripped alike shows once naming both, with its policy; a
// message's control characters are escaped, never written to the terminal.
func TestAuditWide(t *testing.T) {
	out, _ := runAudit(t, whySample, "-o", "wide")
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	want := []string{ // a finding's line whole, a record's row by its object
		"    deny   multiple-cloud-identities (credentials aws-a, aws-b; policy baseline): the pod would hold 2 aws identities: request only one",
		"    warn   static-credentials (credential wandb): credential wandb: static keys",
		"    audit  sensitive-namespace: flagged namespace",
		"Job/train-43",
		"    warn   static-credentials (credential wandb): credential wandb: static keys",
		"Job/resnet",
		"    deny   admin-scoped-credential (credential aws-admin): too wide",
		"Pod/resnet-*",
		`    deny   admin-scoped-credential (credential aws-admin): line one\nline two\x1b[31m red`,
	}
	if len(lines) != 2+len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), 2+len(want), out)
	}
	if !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[1], "Pod/train-42-*") {
		t.Errorf("want the header, then the first record:\n%s", out)
	}
	for i, w := range want {
		l := lines[i+2]
		if finding := strings.HasPrefix(w, "    "); finding && l != w || !finding && !strings.Contains(l, w) {
			t.Errorf("line %d: %q, want %q", i+3, l, w)
		}
	}
	if strings.Count(out, "request only one") != 1 || strings.ContainsRune(out, '\x1b') {
		t.Errorf("want the shared message once and no escape character:\n%s", out)
	}
}

// TestAuditJSONKeepsPolicy: -o json prints records as they are, the violation's policy
// included.
func TestAuditJSONKeepsPolicy(t *testing.T) {
	out, _ := runAudit(t, whySample, "-o", "json")
	if n := strings.Count(out, `"action":"deny","policy":"baseline"`); n != 2 {
		t.Errorf("%d violations with their policy, want 2:\n%s", n, out)
	}
}

// summarySection returns the lines of the table of the summary titled title.
func summarySection(out, title string) []string {
	for _, block := range strings.Split(out, "\n\n") {
		if strings.HasPrefix(block, title+"  ") {
			return strings.Split(strings.TrimSuffix(block, "\n"), "\n")[1:]
		}
	}
	return nil
}

// TestAuditSummaryDenied: summary --event denied counts by rule the violations that refused,
// and the warnings that rode along apart.
func TestAuditSummaryDenied(t *testing.T) {
	out, _ := runAudit(t, whySample, "summary", "--event", "denied")
	squash := func(ls []string) []string {
		for i, l := range ls {
			ls[i] = strings.Join(strings.Fields(l), " ")
		}
		return ls
	}
	if diff := cmp.Diff([]string{"admin-scoped-credential 2", "multiple-cloud-identities 1"}, squash(summarySection(out, "RULE (DENY)"))); diff != "" {
		t.Errorf("rules (-want +got):\n%s\n%s", diff, out)
	}
	if diff := cmp.Diff([]string{"sensitive-namespace 1", "static-credentials 1"}, squash(summarySection(out, "WARNING (WARN, AUDIT)"))); diff != "" {
		t.Errorf("warnings (-want +got):\n%s\n%s", diff, out)
	}
}

// TestAuditSummaryByOwner: summary --by owner counts records for their owner workload, a
// CronJob with its Jobs and their pods, a Job with its pods; -o json holds the same; a bad
// --by is refused.
func TestAuditSummaryByOwner(t *testing.T) {
	out, _ := runAudit(t, whySample, "summary", "--by", "owner")
	if !strings.HasPrefix(out, "4 records\n\nNAMESPACE  ") || summarySection(out, "EVENT") != nil {
		t.Errorf("want the record count, then the owners only:\n%s", out)
	}
	rows := summarySection(out, "NAMESPACE")
	want := []map[string]string{ // as many records: by namespace
		{"NAMESPACE": "cv", "OWNER": "Job/resnet", "RECORDS": "2", "EVENTS": "2 denied", "RULES": "admin-scoped-credential 2", "WARNINGS": "-"},
		{"NAMESPACE": "ml-team", "OWNER": "CronJob/nightly", "RECORDS": "2", "EVENTS": "1 denied, 1 warned", "RULES": "multiple-cloud-identities 1",
			"WARNINGS": "static-credentials 2, sensitive-namespace 1"},
	}
	header := strings.Split(out, "\n")[2]
	if len(rows) != len(want) {
		t.Fatalf("%d owners, want %d:\n%s", len(rows), len(want), out)
	}
	for i, w := range want {
		got := columns(t, header, rows[i])
		for k, v := range w {
			if got[k] != v {
				t.Errorf("owner %d: %s %q, want %q\n%s", i+1, k, got[k], v, out)
			}
		}
	}

	js, _ := runAudit(t, whySample, "summary", "--by", "owner", "-o", "json")
	var s struct {
		Records int `json:"records"`
		Rules   map[string]int
		Owners  []struct {
			Namespace, Kind, Name string
			Records               int
		} `json:"owners"`
	}
	if err := json.Unmarshal([]byte(js), &s); err != nil {
		t.Fatal(err)
	}
	if s.Records != 4 || s.Rules != nil || len(s.Owners) != 2 || s.Owners[1].Kind != "CronJob" || s.Owners[1].Records != 2 {
		t.Errorf("JSON summary %+v:\n%s", s, js)
	}

	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"audit", "summary", "--by", "pod"}, strings.NewReader(whySample), &stdout, &stderr); code != 2 ||
		!strings.Contains(stderr.String(), `--by: no breakdown "pod"`) {
		t.Errorf("--by pod: exit code %d, stderr %q; want 2 and the bad value named", code, stderr.String())
	}
}
