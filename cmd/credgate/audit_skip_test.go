package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestAuditCommandSkipsBrokenLines: a line over 4 MiB and a malformed one are reported with
// their line numbers and skipped, the records after them still listed, and the exit status is
// 0 as --help says; a record without "v" is read as version 1; log lines are counted in one
// line on stderr.
func TestAuditCommandSkipsBrokenLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	content := record("1", "2026-11-23T08:00:00Z", "denied", "ml", "alice", "admin-scoped-credential") +
		`{"v":1,"event":"admission_denied","name":"` + strings.Repeat("x", 5<<20) + `"}` + "\n" + // 2
		`{"v":1,"event":"admission_denied",` + "\n" + // 3
		strings.Replace(record("2", "2026-11-23T09:00:00Z", "warned", "ml", "bob", "static-credentials"), `"v":1,`, "", 1) +
		`{"level":"info","msg":"policies loaded"}` + "\n" +
		`{"level":"error","msg":"audit write failed","event":"write"}` + "\n" +
		record("3", "2026-11-23T10:00:00Z", "denied", "cv", "alice", "conflicting-env")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{path, "-o", "json"}, {"-o", "json"}} {
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), append([]string{"audit"}, args...), strings.NewReader(content), &stdout, &stderr)
		if code != 0 {
			t.Fatalf("%v: exit code %d, want 0\nstderr: %s", args, code, stderr.String())
		}
		var uids, versions []string
		for _, l := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
			if i := strings.Index(l, `"requestUID":"`); i >= 0 {
				uids = append(uids, l[i+len(`"requestUID":"`):][:1])
			}
			if strings.HasPrefix(l, `{"v":`) {
				versions = append(versions, l[len(`{"v":`):][:1])
			}
		}
		if diff := cmp.Diff([]string{"1", "2", "3"}, uids); diff != "" {
			t.Errorf("%v: records (-want +got):\n%s", args, diff)
		}
		if diff := cmp.Diff([]string{"1", "1", "1"}, versions); diff != "" {
			t.Errorf("%v: versions (-want +got):\n%s", args, diff)
		}
		source := path
		if len(args) == 2 {
			source = "stdin"
		}
		for _, want := range []string{
			source + ":2: line longer than 4194304 bytes, skipped\n",
			source + ":3: not JSON",
			"warning: 2 broken line(s) skipped\n",
			"2 JSON line(s) skipped as not audit records",
		} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("%v: stderr lacks %q:\n%s", args, want, stderr.String())
			}
		}
		if n := strings.Count(stderr.String(), "\n"); n != 4 {
			t.Errorf("%v: %d lines on stderr, want 4 (two problems, two counts):\n%s", args, n, stderr.String())
		}
	}

	// No log lines: no count of them.
	var stdout, stderr bytes.Buffer
	in := record("1", "2026-11-23T08:00:00Z", "denied", "ml", "alice", "admin-scoped-credential")
	if code := run(t.Context(), []string{"audit", "-o", "json"}, strings.NewReader(in), &stdout, &stderr); code != 0 || stderr.Len() != 0 {
		t.Errorf("clean input: exit code %d, stderr %q; want 0 and nothing", code, stderr.String())
	}
}

// TestAuditHelpExitStatus: --help documents the exit status the test above relies on.
func TestAuditHelpExitStatus(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"audit", "--help"}, nil, &stdout, &stderr); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if !strings.Contains(stdout.String(), "Exit status: 0 when every source was read, even with lines skipped") {
		t.Errorf("--help does not document the exit status:\n%s", stdout.String())
	}
}
