package audit

import (
	"slices"
	"strings"
	"sync"
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
	// Policy is the name of the CredentialPolicy object that produced the violation; empty
	// when none did (a built-in rule, a file of --policy-dir) and in records written before
	// the field existed. Optional: adding it kept the schema at version 1.
	Policy string `json:"policy,omitempty"`
}

// The actions of a violation (Violation.Action).
const (
	ActionDeny  = "deny"
	ActionWarn  = "warn"
	ActionAudit = "audit"
)

// ActionOf returns the action v took in r: its own, or, for a record written before
// violations carried their action, the record's enforcement (and, lacking that too, the
// action its event implies).
func (r *Record) ActionOf(v *Violation) string {
	if v.Action != "" {
		return v.Action
	}
	if r.Enforcement != "" {
		return r.Enforcement
	}
	switch r.Event {
	case EventDenied:
		return ActionDeny
	case EventWarned:
		return ActionWarn
	case EventAudited:
		return ActionAudit
	}
	return ""
}

// Finding is what a record says once: its violations of one rule, with one action and one
// message, merged, with every credential and policy they name. Two credentials tripping the
// same rule with the same message make one finding naming both.
type Finding struct {
	Action      string   `json:"action"`
	Rule        string   `json:"rule"`
	Message     string   `json:"message"`
	Credentials []string `json:"credentials,omitempty"`
	Policies    []string `json:"policies,omitempty"`
}

// Refused reports whether the finding refused the object (its action is deny); the others
// are warnings that rode along (warn, audit).
func (f *Finding) Refused() bool { return f.Action == ActionDeny }

// Findings returns r's violations merged into findings: those that refused (deny) first,
// then warn, audit and any other action, each in the order of its first violation.
func (r *Record) Findings() []Finding {
	type key struct{ action, rule, message string }
	type name struct {
		finding int
		policy  bool
		name    string
	}
	index := make(map[key]int, len(r.Violations))
	named := map[name]bool{} // a set, not a scan of the lists: a record may hold many violations
	var out []Finding
	for i := range r.Violations {
		v := &r.Violations[i]
		k := key{r.ActionOf(v), v.Rule, v.Message}
		j, ok := index[k]
		if !ok {
			j = len(out)
			index[k] = j
			out = append(out, Finding{Action: k.action, Rule: v.Rule, Message: v.Message})
		}
		f := &out[j]
		if n := (name{j, false, v.Credential}); v.Credential != "" && !named[n] {
			named[n] = true
			f.Credentials = append(f.Credentials, v.Credential)
		}
		if n := (name{j, true, v.Policy}); v.Policy != "" && !named[n] {
			named[n] = true
			f.Policies = append(f.Policies, v.Policy)
		}
	}
	slices.SortStableFunc(out, func(a, b Finding) int { return actionRank(a.Action) - actionRank(b.Action) })
	return out
}

// actionRank orders actions strongest first.
func actionRank(action string) int {
	switch action {
	case ActionDeny:
		return 0
	case ActionWarn:
		return 1
	case ActionAudit:
		return 2
	}
	return 3
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
	// Built only for a message that holds a value: most hold none, and a Replacer costs more
	// to build than the messages of one admission to search.
	replacer := sync.OnceValue(func() *strings.Replacer { return strings.NewReplacer(repl...) })
	return func(s string) string {
		for i := 0; i < len(repl); i += 2 {
			if strings.Contains(s, repl[i]) {
				return replacer().Replace(s)
			}
		}
		return s
	}
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
