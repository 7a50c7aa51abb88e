package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/credgate/credgate/audit"
)

type failingSink struct{}

func (failingSink) Write(context.Context, []byte) error { return errors.New("disk full") }

func TestAuditorRecord(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := audit.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	a := &audit.Auditor{Sinks: []audit.Sink{audit.NewWriterSink(&out)}, Metrics: m, Now: func() time.Time { return now }}
	r := &audit.Record{Event: audit.EventDenied, Namespace: "ml", Violations: []audit.Violation{
		{Rule: "user-policy", Message: "container sets TOKEN=sk-live-1234567890 and region eu-west"},
	}}
	r.Redact(audit.Redactor([]string{"sk-live-1234567890", "eu-west", "1"}))
	if err := a.Record(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSuffix(out.String(), "\n")
	if strings.Contains(line, "\n") {
		t.Fatalf("more than one line: %q", out.String())
	}
	var got audit.Record
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatal(err)
	}
	if got.Version != audit.SchemaVersion || !got.Time.Equal(now) || got.Time.Location() != time.UTC {
		t.Errorf("version %d, time %v: want %d and %v in UTC", got.Version, got.Time, audit.SchemaVersion, now)
	}
	if msg := got.Violations[0].Message; strings.Contains(msg, "sk-live") || !strings.Contains(msg, "[redacted]") || !strings.Contains(msg, "eu-west") {
		t.Errorf("message %q: want the long literal redacted, short ones kept", msg)
	}
	if n := testutil.ToFloat64(m.Records(audit.EventDenied)); n != 1 {
		t.Errorf("credgate_audit_records_total{event=admission_denied} = %v, want 1", n)
	}

	a.Sinks = append(a.Sinks, failingSink{})
	if err := a.Record(context.Background(), &audit.Record{Event: audit.EventWarned}); err == nil {
		t.Error("a failing sink did not fail Record")
	}
	if n := testutil.ToFloat64(m.WriteErrors()); n != 1 {
		t.Errorf("credgate_audit_write_errors_total = %v, want 1", n)
	}
	if strings.Count(out.String(), "\n") != 2 {
		t.Errorf("the working sink did not get the record the failing one lost:\n%s", out.String())
	}
}

func TestParseOnError(t *testing.T) {
	for in, want := range map[string]audit.OnError{"refuse": audit.Refuse, "admit": audit.Admit} {
		if got, err := audit.ParseOnError(in); err != nil || got != want {
			t.Errorf("ParseOnError(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := audit.ParseOnError("ignore"); err == nil {
		t.Error(`ParseOnError("ignore") succeeded`)
	}
	if !(&audit.Auditor{}).FailClosed() || (&audit.Auditor{OnError: audit.Admit}).FailClosed() {
		t.Error("FailClosed: want true by default, false for admit")
	}
}
