package audit

import (
	"strings"
	"time"
)

// SchemaVersion is the version of Record, the "v" of every line. A reader accepts records of
// its version and older.
const SchemaVersion = 1

// Event says what the admission decided.
type Event string

// The events of a record (docs/audit.md). Allowed records are off by default.
const (
	EventDenied  Event = "admission_denied"
	EventWarned  Event = "admission_warned"
	EventAudited Event = "admission_audited"
	EventAllowed Event = "admission_allowed"
)

// Events lists every event, strongest first.
var Events = []Event{EventDenied, EventWarned, EventAudited, EventAllowed}

// Record is one audit line.
type Record struct {
	Version    int       `json:"v"`
	Time       time.Time `json:"time"`
	Event      Event     `json:"event"`
	RequestUID string    `json:"requestUID"`
	DryRun     bool      `json:"dryRun"`
	Operation  string    `json:"operation,omitempty"`
	User       string    `json:"user"`
	Groups     []string  `json:"groups,omitempty"`
	Namespace  string    `json:"namespace"`
	Kind       string    `json:"kind"`
	Name       string    `json:"name,omitempty"`
	// Owner is the workload that created the object (its controller owner reference), with
	// the owner above it where credgate could resolve it (a CronJob above a Job).
	Owner       *Owner      `json:"owner,omitempty"`
	Credentials []string    `json:"credentials,omitempty"`
	Violations  []Violation `json:"violations,omitempty"`
	// Enforcement is the strongest action among the violations: deny, warn, audit, or allow.
	Enforcement    string `json:"enforcement"`
	PolicyRevision string `json:"policyRevision,omitempty"`
}

// Owner is a workload that owns another.
type Owner struct {
	Kind  string `json:"kind"`
	Name  string `json:"name"`
	Owner *Owner `json:"owner,omitempty"`
}

// Violation is one rule a decision found broken, with the action its enforcement took.
type Violation struct {
	Rule       string `json:"rule"`
	Credential string `json:"credential,omitempty"`
	Message    string `json:"message"`
	Action     string `json:"action"`
}

// minRedacted is the shortest literal value Redact hides: shorter ones ("1", "true", a
// region) are not secrets and would turn every message into asterisks.
const minRedacted = 8

// Redact passes every violation message of r through redact (a Redactor of the literal
// values the submitted pod sets, which a user-written policy could quote). Built-in messages
// quote names, never values; this keeps a careless policy from writing one into the audit
// trail.
func (r *Record) Redact(redact func(string) string) {
	for i := range r.Violations {
		r.Violations[i].Message = redact(r.Violations[i].Message)
	}
}

// Redactor returns a function that replaces each of values (of at least minRedacted bytes)
// with "[redacted]".
func Redactor(values []string) func(string) string {
	var repl []string
	for _, v := range values {
		if len(v) >= minRedacted {
			repl = append(repl, v, "[redacted]")
		}
	}
	if len(repl) == 0 {
		return func(s string) string { return s }
	}
	return strings.NewReplacer(repl...).Replace
}

// String returns the owner chain as "Kind/name < Kind/name", for tables.
func (o *Owner) String() string {
	if o == nil {
		return ""
	}
	s := o.Kind + "/" + o.Name
	if o.Owner != nil {
		s += " < " + o.Owner.String()
	}
	return s
}
