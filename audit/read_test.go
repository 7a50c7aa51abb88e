package audit_test

import (
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/credgate/credgate/audit"
)

const stream = `{"v":1,"time":"2026-11-23T10:00:00Z","event":"admission_denied","user":"alice","namespace":"ml","kind":"Pod","name":"p","owner":{"kind":"Job","name":"j","owner":{"kind":"CronJob","name":"c"}},"credentials":["aws-admin","wandb"],"violations":[{"rule":"admin-scoped-credential","credential":"aws-admin","message":"m","action":"deny"},{"rule":"admin-scoped-credential","credential":"aws-admin","message":"n","action":"deny"}],"enforcement":"deny"}
{"level":"info","ts":1700000000,"msg":"policies loaded"}

not JSON
{"v":1,"time":"2026-11-23T12:30:00Z","event":"admission_warned","user":"bob","namespace":"cv","kind":"Job","name":"j2","credentials":["aws"],"violations":[{"rule":"static-credentials","message":"m","action":"warn"}],"enforcement":"warn"}
{"v":99,"time":"2026-11-23T12:30:00Z","event":"admission_denied"}
{"v":1,"time":"yesterday","event":"admission_denied"}
`

func readAll(t *testing.T, f audit.Filter) ([]string, []audit.Problem) {
	t.Helper()
	var names []string
	var problems []audit.Problem
	err := audit.Read(strings.NewReader(stream), "s", func(r *audit.Record) error {
		if f.Match(r) {
			names = append(names, r.Name)
		}
		return nil
	}, func(p audit.Problem) { problems = append(problems, p) })
	if err != nil {
		t.Fatal(err)
	}
	return names, problems
}

func TestRead(t *testing.T) {
	names, problems := readAll(t, audit.Filter{})
	if diff := cmp.Diff([]string{"p", "j2"}, names); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	var lines []int
	for _, p := range problems {
		lines = append(lines, p.Line)
	}
	// Line 2 is a log line (skipped silently); 3 is empty; 4 is not JSON, 6 is of a newer
	// schema, 7 has a bad time.
	if diff := cmp.Diff([]int{4, 6, 7}, lines); diff != "" {
		t.Errorf("problem lines (-want +got):\n%s", diff)
	}
}

func TestFilter(t *testing.T) {
	at := func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }
	tests := []struct {
		name   string
		filter audit.Filter
		want   []string
	}{
		{"since", audit.Filter{Since: at("2026-11-23T11:00:00Z")}, []string{"j2"}},
		{"until is exclusive", audit.Filter{Until: at("2026-11-23T12:30:00Z")}, []string{"p"}},
		{"namespace", audit.Filter{Namespace: "cv"}, []string{"j2"}},
		{"user", audit.Filter{User: "alice"}, []string{"p"}},
		{"rule", audit.Filter{Rule: "static-credentials"}, []string{"j2"}},
		{"credential", audit.Filter{Credential: "wandb"}, []string{"p"}},
		{"kind of the object", audit.Filter{Kind: "job"}, []string{"p", "j2"}},
		{"kind of an owner", audit.Filter{Kind: "CronJob"}, []string{"p"}},
		{"event", audit.Filter{Events: []audit.Event{audit.EventWarned}}, []string{"j2"}},
		{"all at once", audit.Filter{Namespace: "ml", User: "bob"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := readAll(t, tt.filter)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestSummary(t *testing.T) {
	s, err := audit.NewSummary(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.Read(strings.NewReader(stream), "s", func(r *audit.Record) error { s.Add(r); return nil }, func(audit.Problem) {}); err != nil {
		t.Fatal(err)
	}
	s.Finish()
	if s.Records != 2 || s.Rules["admin-scoped-credential"] != 1 || s.Credentials["aws"] != 1 || s.Users["alice"] != 1 {
		t.Errorf("summary %+v", s)
	}
	want := []int{1, 0, 1} // 10:00, 11:00 (empty), 12:00
	var got []int
	for _, b := range s.Buckets {
		got = append(got, b.Count)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("histogram (-want +got):\n%s", diff)
	}

	// A year of records in one-minute buckets is widened to at most a thousand buckets.
	wide, err := audit.NewSummary(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for d := range 365 {
		wide.Add(&audit.Record{Time: start.Add(time.Duration(d) * 24 * time.Hour)})
	}
	wide.Finish()
	total := 0
	for _, b := range wide.Buckets {
		total += b.Count
	}
	if len(wide.Buckets) > 1000 || total != 365 {
		t.Errorf("%d buckets holding %d records; want at most 1000 holding 365", len(wide.Buckets), total)
	}
}

// TestReadSkipsBrokenLines: a line longer than MaxLine, one that is not JSON and a malformed
// record are each reported with their line number and skipped, and reading goes on to the
// records after them; a record without "v" is of version 1; log lines are counted apart.
func TestReadSkipsBrokenLines(t *testing.T) {
	rec := func(name string) string {
		return `{"v":1,"time":"2026-11-23T10:00:00Z","event":"admission_denied","kind":"Pod","name":"` + name + `"}` + "\n"
	}
	exact := `{"v":1,"time":"2026-11-23T10:00:00Z","event":"admission_denied","kind":"Pod","name":"exact","pad":"`
	exact += strings.Repeat("x", audit.MaxLine-len(exact)-2) + `"}`
	in := rec("first") +
		`{"v":1,"event":"admission_denied","name":"` + strings.Repeat("x", 5<<20) + `"}` + "\n" + // 2: 5 MiB
		"{not json\n" + // 3
		`{"v":1,"time":"yesterday","event":"admission_denied"}` + "\n" + // 4: malformed record
		`{"time":"2026-11-23T11:00:00Z","event":"admission_warned","kind":"Pod","name":"unversioned"}` + "\n" + // 5
		`{"level":"info","msg":"log line","event":"startup"}` + "\n" + // 6: log line
		`{"level":"info","msg":"log line"}` + "\r\n" + // 7: log line
		`[1,2]` + "\n" + // 8: JSON, no object
		exact + "\r\n" + // 9: MaxLine bytes exactly
		exact + "x\n" + // 10: one byte too long
		rec("last") // 11
	var names []string
	var versions []int
	var problems []string
	var notRecords []int
	err := audit.Scan(strings.NewReader(in), "s", audit.Handlers{
		Record: func(r *audit.Record) error {
			names = append(names, r.Name)
			versions = append(versions, r.Version)
			return nil
		},
		Problem:   func(p audit.Problem) { problems = append(problems, p.Error()) },
		NotRecord: func(line int) { notRecords = append(notRecords, line) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"first", "unversioned", "exact", "last"}, names); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{1, 1, 1, 1}, versions); diff != "" {
		t.Errorf("versions (-want +got):\n%s", diff)
	}
	want := []string{"s:2: line longer than 4194304 bytes", "s:3: not JSON", "s:4: malformed record", "s:10: line longer than 4194304 bytes"}
	if len(problems) != len(want) {
		t.Fatalf("problems %q, want %q", problems, want)
	}
	for i, p := range problems {
		if !strings.HasPrefix(p, want[i]) {
			t.Errorf("problem %q, want %q…", p, want[i])
		}
	}
	if diff := cmp.Diff([]int{6, 7, 8}, notRecords); diff != "" {
		t.Errorf("lines that are no records (-want +got):\n%s", diff)
	}
}

// endlessLine is a line of n bytes of 'x', made as it is read.
type endlessLine struct{ n int }

func (l *endlessLine) Read(p []byte) (int, error) {
	if l.n == 0 {
		return 0, io.EOF
	}
	k := min(len(p), l.n)
	for i := range p[:k] {
		p[i] = 'x'
	}
	l.n -= k
	return k, nil
}

// TestReadDoesNotHoldLongLine: a line far longer than MaxLine is discarded as it is read.
func TestReadDoesNotHoldLongLine(t *testing.T) {
	const long = 64 << 20
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var problems []audit.Problem
	r := io.MultiReader(&endlessLine{n: long}, strings.NewReader("\n"+`{"event":"admission_denied","name":"after"}`+"\n"))
	var names []string
	err := audit.Read(r, "s", func(r *audit.Record) error { names = append(names, r.Name); return nil },
		func(p audit.Problem) { problems = append(problems, p) })
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || problems[0].Line != 1 || len(names) != 1 || names[0] != "after" {
		t.Errorf("problems %v, records %q; want line 1 reported and the record after it read", problems, names)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > long/2 {
		t.Errorf("reading a %d-byte line allocated %d bytes; want at most %d", long, alloc, long/2)
	}
}
