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

// maxLine bounds one audit line; a longer one is reported and skipped.
const maxLine = 4 << 20

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

// Problem is a line Read could not take as a record.
type Problem struct {
	Source string
	Line   int
	Err    error
}

func (p Problem) Error() string { return fmt.Sprintf("%s:%d: %v", p.Source, p.Line, p.Err) }

// Read reads the records of one JSON-lines stream, calling fn for each. A line that is JSON
// but no audit record (credgate's own log lines share stdout with the records) is skipped
// silently; a line that is not JSON, or a record of a newer schema, is reported to problem
// and skipped. Only an error reading r, or one fn returns, ends Read early.
func Read(r io.Reader, source string, fn func(*Record) error, problem func(Problem)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var probe struct {
			V     *int   `json:"v"`
			Event string `json:"event"`
		}
		if err := json.Unmarshal(b, &probe); err != nil {
			problem(Problem{Source: source, Line: line, Err: fmt.Errorf("not JSON: %w", err)})
			continue
		}
		if probe.V == nil || !strings.HasPrefix(probe.Event, "admission_") {
			continue // a log line, not a record
		}
		if *probe.V > SchemaVersion {
			problem(Problem{Source: source, Line: line, Err: fmt.Errorf("record of schema version %d; this credgate reads up to %d", *probe.V, SchemaVersion)})
			continue
		}
		rec := &Record{}
		if err := json.Unmarshal(b, rec); err != nil {
			problem(Problem{Source: source, Line: line, Err: fmt.Errorf("malformed record: %w", err)})
			continue
		}
		if err := fn(rec); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return fmt.Errorf("%s:%d: a line longer than %d bytes", source, line+1, maxLine)
		}
		return fmt.Errorf("read %s: %w", source, err)
	}
	return nil
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
