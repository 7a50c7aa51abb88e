package main

import (
	"bytes"
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
