package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// MaxLine bounds one audit line, without its newline; Read reports a longer one and skips
// it.
const MaxLine = 4 << 20

// Filter selects records; a zero field selects everything.
type Filter struct {
	Since, Until time.Time
	Namespace    string
	User         string
	Rule         string
	Credential   string
	Kind         string
	Events       []Event
}

// Match reports whether r passes every filter set.
func (f *Filter) Match(r *Record) bool {
	switch {
	case !f.Since.IsZero() && r.Time.Before(f.Since),
		!f.Until.IsZero() && !r.Time.Before(f.Until),
		f.Namespace != "" && r.Namespace != f.Namespace,
		f.User != "" && r.User != f.User,
		f.Kind != "" && !strings.EqualFold(r.Kind, f.Kind) && (r.Owner == nil || !r.Owner.has(f.Kind)),
		f.Credential != "" && !slices.Contains(r.Credentials, f.Credential),
		len(f.Events) > 0 && !slices.Contains(f.Events, r.Event):
		return false
	}
	if f.Rule != "" {
		return slices.ContainsFunc(r.Violations, func(v Violation) bool { return v.Rule == f.Rule })
	}
	return true
}

func (o *Owner) has(kind string) bool {
	for ; o != nil; o = o.Owner {
		if strings.EqualFold(o.Kind, kind) {
			return true
		}
	}
	return false
}

// Problem is a line Read could not take as a record, and skipped.
type Problem struct {
	Source string
	Line   int
	Err    error
}

func (p Problem) Error() string { return fmt.Sprintf("%s:%d: %v", p.Source, p.Line, p.Err) }

// Handlers receive what Scan finds in a stream.
type Handlers struct {
	// Record is called for each record; an error it returns ends Scan with that error.
	Record func(*Record) error
	// Problem, if set, is called for each line skipped as broken: not JSON, longer than
	// MaxLine, a malformed record, or a record of a newer schema.
	Problem func(Problem)
	// NotRecord, if set, is called with the number of each line that is JSON but no audit
	// record (credgate's own log lines share stdout with the records), skipped silently.
	NotRecord func(line int)
}

// Read reads the records of one JSON-lines stream, calling fn for each, and problem for each
// line skipped as broken. It is Scan without NotRecord.
func Read(r io.Reader, source string, fn func(*Record) error, problem func(Problem)) error {
	return Scan(r, source, Handlers{Record: fn, Problem: problem})
}

// Scan reads the records of one JSON-lines stream. A line that is a JSON object whose "event"
// starts with "admission_" is a record (one without "v" is of version 1); any other JSON line
// is no record and skipped. A line that is not JSON, is longer than MaxLine (it is discarded
// as it is read, never held whole), is a malformed record or one of a newer schema is
// reported to h.Problem and skipped. Only an error reading r, or one h.Record returns, ends
// Scan early.
func Scan(r io.Reader, source string, h Handlers) error {
	if h.Problem == nil {
		h.Problem = func(Problem) {}
	}
	if h.NotRecord == nil {
		h.NotRecord = func(int) {}
	}
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	for line := 1; ; line++ {
		var n int // length of the line, newline included
		var err error
		buf = buf[:0]
		for {
			var chunk []byte
			chunk, err = br.ReadSlice('\n')
			n += len(chunk)
			if n <= MaxLine+2 { // room for "\r\n"; a longer line is dropped below
				buf = append(buf, chunk...)
			}
			if err != bufio.ErrBufferFull {
				break
			}
		}
		if n == 0 && err == io.EOF {
			return nil
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("read %s: %w", source, err)
		}
		b := bytes.TrimSuffix(bytes.TrimSuffix(buf, []byte("\n")), []byte("\r"))
		if len(buf) < n || len(b) > MaxLine {
			h.Problem(Problem{Source: source, Line: line, Err: fmt.Errorf("line longer than %d bytes", MaxLine)})
		} else if rerr := readLine(b, source, line, h); rerr != nil {
			return rerr
		}
		if err == io.EOF {
			return nil
		}
	}
}

// readLine passes one line to h.
func readLine(b []byte, source string, line int, h Handlers) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	problem := func(err error) { h.Problem(Problem{Source: source, Line: line, Err: err}) }
	var probe struct {
		V     json.RawMessage `json:"v"`
		Event json.RawMessage `json:"event"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) { // JSON, but no object
			h.NotRecord(line)
			return nil
		}
		problem(fmt.Errorf("not JSON: %w", err))
		return nil
	}
	var event string
	if json.Unmarshal(probe.Event, &event) != nil || !strings.HasPrefix(event, "admission_") {
		h.NotRecord(line) // a log line, not a record
		return nil
	}
	version := 1 // records written before "v" was added
	if len(probe.V) > 0 && string(probe.V) != "null" {
		if err := json.Unmarshal(probe.V, &version); err != nil {
			problem(fmt.Errorf("malformed record: v is %s, not a schema version", probe.V))
			return nil
		}
	}
	if version > SchemaVersion {
		problem(fmt.Errorf("record of schema version %d; this credgate reads up to %d", version, SchemaVersion))
		return nil
	}
	rec := &Record{}
	if err := json.Unmarshal(b, rec); err != nil {
		problem(fmt.Errorf("malformed record: %w", err))
		return nil
	}
	rec.Version = version
	return h.Record(rec)
}

// Files returns path and its rotated files that exist, oldest first, so that records come
// out in the order they were written.
func Files(path string) []string {
	var out []string
	for i := 1; ; i++ {
		if _, err := os.Stat(Backup(path, i)); err != nil {
			break
		}
		out = append(out, Backup(path, i))
	}
	slices.Reverse(out)
	return append(out, path)
}
