package audit_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/credgate/credgate/audit"
)

// syncFile is an audit.File that keeps what is written in memory and how much of it a Sync
// that has returned covers. Its Sync is slow, so a sink that released writers before (or
// without) the fsync would be caught with bytes written but not yet synced.
type syncFile struct {
	delay   time.Duration
	syncErr error // returned by every Sync, which then syncs nothing

	mu     sync.Mutex
	data   []byte
	synced int // data[:synced] is durable
	syncs  int
}

func (f *syncFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data = append(f.data, p...)
	return len(p), nil
}

// Sync makes durable what was written when it was called, once it returns.
func (f *syncFile) Sync() error {
	f.mu.Lock()
	written := len(f.data)
	f.mu.Unlock()
	time.Sleep(f.delay)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.syncs++
	if f.syncErr != nil {
		return f.syncErr
	}
	f.synced = max(f.synced, written)
	return nil
}

func (f *syncFile) Close() error { return nil }

func (f *syncFile) Stat() (os.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fileInfo(len(f.data)), nil
}

// fileInfo is the size of a syncFile.
type fileInfo int64

func (fi fileInfo) Name() string       { return "audit.log" }
func (fi fileInfo) Size() int64        { return int64(fi) }
func (fi fileInfo) Mode() os.FileMode  { return 0o640 }
func (fi fileInfo) ModTime() time.Time { return time.Time{} }
func (fi fileInfo) IsDir() bool        { return false }
func (fi fileInfo) Sys() any           { return nil }

// durable reports whether line, with its newline, is in the file and wholly synced.
func (f *syncFile) durable(line []byte) (bool, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	i := bytes.Index(f.data, append(append([]byte{}, line...), '\n'))
	if i < 0 {
		return false, "not written"
	}
	if end := i + len(line) + 1; end > f.synced {
		return false, fmt.Sprintf("bytes %d-%d written, only %d synced", i, end, f.synced)
	}
	return true, ""
}

func openFake(t *testing.T, f *syncFile) *audit.FileSink {
	t.Helper()
	s, err := audit.OpenFile(filepath.Join(t.TempDir(), "audit.log"), audit.FileOptions{
		Open: func(string) (audit.File, error) { return f, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFileSinkSyncsBeforeWriteReturns: when Write returns nil, every byte of its record has
// been covered by a Sync that returned — alone and with concurrent writers group-committed.
// SIGKILL (TestAuditDurableBeforeResponse) leaves the page cache, so only this test catches a
// sink that skips the fsync or lets writers go before it completes.
func TestFileSinkSyncsBeforeWriteReturns(t *testing.T) {
	for _, writers := range []int{1, 8} {
		t.Run(fmt.Sprintf("writers=%d", writers), func(t *testing.T) {
			f := &syncFile{delay: 20 * time.Millisecond}
			s := openFake(t, f)
			const each = 5
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := range each {
						line := fmt.Appendf(nil, `{"w":%d,"i":%d}`, w, i)
						if err := s.Write(t.Context(), line); err != nil {
							t.Errorf("write %s: %v", line, err)
							continue
						}
						if ok, why := f.durable(line); !ok {
							t.Errorf("Write of %s returned nil before it was durable: %s", line, why)
						}
					}
				})
			}
			wg.Wait()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if f.syncs == 0 || (writers > 1 && f.syncs >= writers*each) {
				t.Errorf("%d syncs for %d records: want at least one, and fewer than one a record with concurrent writers (group commit)", f.syncs, writers*each)
			}
		})
	}
}

// TestFileSinkSyncError: a failed fsync fails the Write of every record of its batch; none is
// reported durable.
func TestFileSinkSyncError(t *testing.T) {
	errSync := errors.New("EIO")
	f := &syncFile{delay: 5 * time.Millisecond, syncErr: errSync}
	s := openFake(t, f)
	defer s.Close()
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			if err := s.Write(t.Context(), fmt.Appendf(nil, `{"w":%d}`, w)); !errors.Is(err, errSync) {
				t.Errorf("Write with a failing Sync: err = %v, want %v", err, errSync)
			}
		})
	}
	wg.Wait()
}

// tornFile is a syncFile whose next write stores only part of what it is given and fails, as a
// disk that fills up does; truncatable says whether it can be cut back, as an *os.File can.
type tornFile struct {
	syncFile
	failNext    bool
	truncatable bool
}

func (f *tornFile) Write(p []byte) (int, error) {
	if !f.failNext {
		return f.syncFile.Write(p)
	}
	f.failNext = false
	n, _ := f.syncFile.Write(p[:len(p)/2])
	return n, errors.New("no space left on device")
}

func (f *tornFile) Truncate(size int64) error {
	if !f.truncatable {
		return errors.New("read-only file system")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.data = f.data[:size]
	return nil
}

// TestFileSinkTornWrite: a write the disk takes only part of fails, and leaves no part of a
// record the next one is glued to: cut off where the file can be truncated, else ended by a
// newline before the next record. Every record written afterwards reads back whole.
func TestFileSinkTornWrite(t *testing.T) {
	for _, truncatable := range []bool{true, false} {
		f := &tornFile{truncatable: truncatable}
		s, err := audit.OpenFile(filepath.Join(t.TempDir(), "audit.log"), audit.FileOptions{
			Open: func(string) (audit.File, error) { return f, nil },
		})
		if err != nil {
			t.Fatal(err)
		}
		first, torn, next := []byte(`{"n":1}`), []byte(`{"n":2,"padding":"xxxxxxxxxxxxxxxx"}`), []byte(`{"n":3}`)
		if err := s.Write(t.Context(), first); err != nil {
			t.Fatal(err)
		}
		f.failNext = true
		if err := s.Write(t.Context(), torn); err == nil {
			t.Fatal("a torn write reported success")
		}
		if err := s.Write(t.Context(), next); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		lines := bytes.Split(bytes.TrimSuffix(f.data, []byte("\n")), []byte("\n"))
		want := 2
		if !truncatable {
			want = 3 // the torn part, on a line of its own
		}
		if len(lines) != want || !bytes.Equal(lines[0], first) || !bytes.Equal(lines[len(lines)-1], next) {
			t.Errorf("truncatable %v: the file holds %q", truncatable, f.data)
		}
	}
}
