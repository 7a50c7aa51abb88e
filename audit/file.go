package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
)

// FileSink appends records to a JSON-lines file and makes each durable before Write returns:
// concurrent writers are group-committed, one write and one fsync for every record waiting,
// so the cost of an fsync is shared by the denials that arrive while it runs. When the file
// would grow past MaxBytes it is rotated (path.1 is the newest old file, path.N the oldest),
// keeping at most MaxBackups old files.
type FileSink struct {
	path       string
	maxBytes   int64
	maxBackups int

	mu     sync.Mutex
	cur    *batch // the batch Write appends to; the flusher takes it whole
	closed bool

	kick chan struct{} // wakes the flusher; buffered, so a kick is never lost
	done chan struct{} // closed when the flusher has exited

	openFile func(path string) (File, error)

	// Owned by the flusher.
	f    File
	size int64
	// torn: a failed write left part of a record that could not be cut off; the next write
	// starts with a newline, so that that part stays a line of its own and no whole record
	// is glued to it.
	torn bool
}

// File is what a FileSink writes through: an *os.File unless FileOptions.Open supplies
// another. Write appends; Sync returns once everything written is on stable storage; Stat
// gives the size of a file opened for appending.
type File interface {
	Write(p []byte) (int, error)
	Sync() error
	Close() error
	Stat() (os.FileInfo, error)
}

type batch struct {
	buf  []byte
	n    int
	done chan struct{}
	err  error
}

func newBatch() *batch { return &batch{done: make(chan struct{})} }

// FileOptions configure a FileSink.
type FileOptions struct {
	// MaxBytes is the size at which the file is rotated; 0 means 100 MiB.
	MaxBytes int64
	// MaxBackups is how many rotated files are kept; 0 means 10.
	MaxBackups int
	// Open opens path for appending, creating it if needed; nil means os.OpenFile with
	// O_WRONLY|O_APPEND|O_CREATE and mode 0640. Tests supply one to watch what is written and
	// synced. Rotation still renames and removes the files at path itself.
	Open func(path string) (File, error)
}

func openOSFile(path string) (File, error) {
	return os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
}

// ErrClosed is returned by Write on a closed sink.
var ErrClosed = errors.New("audit file is closed")

// OpenFile opens (creating it and its directory if needed) the audit file at path for
// appending, and starts the goroutine that commits writes. Close stops it.
func OpenFile(path string, o FileOptions) (*FileSink, error) {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 100 << 20
	}
	if o.MaxBackups <= 0 {
		o.MaxBackups = 10
	}
	if o.Open == nil {
		o.Open = openOSFile
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("create audit directory: %w", err)
	}
	s := &FileSink{path: path, maxBytes: o.MaxBytes, maxBackups: o.MaxBackups, openFile: o.Open,
		cur: newBatch(), kick: make(chan struct{}, 1), done: make(chan struct{})}
	if err := s.open(); err != nil {
		return nil, err
	}
	go s.flusher()
	return s, nil
}

// Write appends line (one JSON document, without its newline) and returns once it is on disk,
// or ctx is done (the line may still be written then), or the write failed.
func (s *FileSink) Write(ctx context.Context, line []byte) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	b := s.cur
	b.buf = append(append(b.buf, line...), '\n')
	b.n++
	select {
	case s.kick <- struct{}{}:
	default: // a kick is pending; the flusher will take this line with it
	}
	s.mu.Unlock()
	select {
	case <-b.done:
		return b.err
	case <-ctx.Done():
		return fmt.Errorf("wait for audit write: %w", ctx.Err())
	}
}

// Close commits what is waiting and closes the file. Writes after Close fail with ErrClosed.
func (s *FileSink) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.kick)
	s.mu.Unlock()
	<-s.done
	if s.f == nil {
		return nil
	}
	return s.f.Close()
}

func (s *FileSink) flusher() {
	defer close(s.done)
	for range s.kick {
		s.flush()
	}
	s.flush() // what arrived between the last kick and Close
}

// flush takes the waiting batch, writes and syncs it, and releases its writers.
func (s *FileSink) flush() {
	s.mu.Lock()
	b := s.cur
	if b.n == 0 {
		s.mu.Unlock()
		return
	}
	s.cur = newBatch()
	s.mu.Unlock()
	b.err = s.commit(b.buf)
	close(b.done)
}

func (s *FileSink) commit(buf []byte) error {
	if s.f == nil { // a rotation failed half-way: try again to open the file
		if err := s.open(); err != nil {
			return err
		}
	}
	if s.size > 0 && s.size+int64(len(buf)) > s.maxBytes {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	if s.torn {
		buf = append([]byte{'\n'}, buf...)
	}
	n, err := s.f.Write(buf)
	if err != nil {
		// A disk that fills up takes part of the batch: cut it off, so that the file holds
		// whole records only (readers skip nothing, and the next record starts a line).
		s.torn = n > 0 && !s.truncate(s.size)
		if !s.torn {
			n = 0
		}
		s.size += int64(n)
		return fmt.Errorf("write audit file: %w", err)
	}
	s.size += int64(n)
	s.torn = false
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("sync audit file: %w", err)
	}
	return nil
}

// truncate cuts the file back to size, if its File can be truncated (an *os.File can).
func (s *FileSink) truncate(size int64) bool {
	t, ok := s.f.(interface{ Truncate(int64) error })
	return ok && t.Truncate(size) == nil
}

func (s *FileSink) open() error {
	f, err := s.openFile(s.path)
	if err != nil {
		return fmt.Errorf("open audit file: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("stat audit file: %w", err)
	}
	s.f, s.size = f, st.Size()
	return nil
}

// rotate renames path.N-1 … path.1 and path one step older, dropping the oldest beyond
// maxBackups, and opens a new path. The directory is synced so the renames survive a crash.
func (s *FileSink) rotate() error {
	err := s.f.Close()
	s.f = nil
	if err != nil {
		return fmt.Errorf("close audit file for rotation: %w", err)
	}
	if err := os.Remove(Backup(s.path, s.maxBackups)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove oldest audit file: %w", err)
	}
	for i := s.maxBackups - 1; i >= 1; i-- {
		if err := os.Rename(Backup(s.path, i), Backup(s.path, i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate audit file: %w", err)
		}
	}
	if err := os.Rename(s.path, Backup(s.path, 1)); err != nil {
		return fmt.Errorf("rotate audit file: %w", err)
	}
	if err := s.open(); err != nil {
		return err
	}
	if d, err := os.Open(filepath.Dir(s.path)); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// Backup is the name of the i-th rotated file of path, 1 being the newest.
func Backup(path string, i int) string { return path + "." + strconv.Itoa(i) }
