package audit_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/credgate/credgate/audit"
)

// lines reads every line of path; a missing file has none.
func lines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		out = append(out, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestFileSinkConcurrentWriters: every line of many concurrent writers arrives whole, once.
func TestFileSinkConcurrentWriters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit", "audit.log")
	s, err := audit.OpenFile(path, audit.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := s.Write(t.Context(), fmt.Appendf(nil, `{"w":%d,"i":%d}`, w, i)); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	seen := map[[2]int]bool{}
	for _, l := range lines(t, path) {
		var v struct{ W, I int }
		if err := json.Unmarshal([]byte(l), &v); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if seen[[2]int{v.W, v.I}] {
			t.Errorf("line %q written twice", l)
		}
		seen[[2]int{v.W, v.I}] = true
	}
	if len(seen) != writers*each {
		t.Errorf("%d distinct lines, want %d", len(seen), writers*each)
	}
	if err := s.Write(context.Background(), []byte(`{}`)); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("write after close: err = %v, want ErrClosed", err)
	}
}

// TestFileSinkRotation: past MaxBytes the file rotates; MaxBackups old files are kept, the
// oldest dropped, and no line is split or lost among the files kept.
func TestFileSinkRotation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	line := []byte(`{"pad":"0123456789012345678901234567890123456789"}`) // 51 bytes and a newline
	s, err := audit.OpenFile(path, audit.FileOptions{MaxBytes: 10 * 52, MaxBackups: 3})
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if err := s.Write(t.Context(), line); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	total := len(lines(t, path))
	for i := 1; i <= 3; i++ {
		n := len(lines(t, audit.Backup(path, i)))
		if n != 10 {
			t.Errorf("%s has %d lines, want 10", audit.Backup(path, i), n)
		}
		total += n
	}
	if _, err := os.Stat(audit.Backup(path, 4)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a fourth backup exists (err %v); MaxBackups is 3", err)
	}
	if total != 40 {
		t.Errorf("%d lines kept, want 40 (the newest file and three backups of 10)", total)
	}

	// Reopening appends to the current file.
	s, err = audit.OpenFile(path, audit.FileOptions{MaxBytes: 10 * 52, MaxBackups: 3})
	if err != nil {
		t.Fatal(err)
	}
	before := len(lines(t, path))
	if err := s.Write(t.Context(), line); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if after := len(lines(t, path)); after != before+1 && after != 1 {
		t.Errorf("reopened file has %d lines, want %d (or 1 after a rotation)", after, before+1)
	}
}

// TestFileSinkUnwritableDirectory: a file that cannot be created is an error at start.
func TestFileSinkUnwritableDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// root writes anywhere; a path under a regular file fails for root too.
		f := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		dir = f
	}
	if _, err := audit.OpenFile(filepath.Join(dir, "audit.log"), audit.FileOptions{}); err == nil {
		t.Error("OpenFile succeeded where no file can be created")
	}
}
