package audit

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// The breakdowns a summary can count records by (credgate audit summary --by).
const (
	ByEvent      = "event"
	ByRule       = "rule"
	ByWarning    = "warning"
	ByNamespace  = "namespace"
	ByUser       = "user"
	ByCredential = "credential"
	ByOwner      = "owner"
)

// Breakdowns lists every breakdown; DefaultBreakdowns those a summary counts unless told
// otherwise: all but owner.
var (
	Breakdowns        = []string{ByEvent, ByRule, ByWarning, ByNamespace, ByUser, ByCredential, ByOwner}
	DefaultBreakdowns = []string{ByEvent, ByRule, ByWarning, ByNamespace, ByUser, ByCredential}
)

// Summary counts records by event, rule, namespace, user, credential and owner workload (the
// breakdowns asked for), and over time. A breakdown not asked for is nil, and left out of the
// JSON.
type Summary struct {
	Records int            `json:"records"`
	Events  map[string]int `json:"events,omitzero"`
	// Rules counts records by the rules that refused them: violations whose action is deny
	// (in a record written before violations carried their action, the record's
	// enforcement).
	Rules map[string]int `json:"rules,omitzero"`
	// Warnings counts records by the rules that warned about or flagged them (warn, audit)
	// without refusing them, a refused record's included.
	Warnings    map[string]int `json:"warnings,omitzero"`
	Namespaces  map[string]int `json:"namespaces,omitzero"`
	Users       map[string]int `json:"users,omitzero"`
	Credentials map[string]int `json:"credentials,omitzero"`
	// Owners counts records by the workload at the top of their owner chain, most records
	// first; Finish fills it.
	Owners []*OwnerCount `json:"owners,omitzero"`
	// By lists the breakdowns counted, in the order asked for.
	By          []string      `json:"-"`
	BucketWidth time.Duration `json:"-"`
	Buckets     []Bucket      `json:"histogram"`

	bucketCounts map[time.Time]int
	// owners counts records by the top of their own owner chain; parents is every owner link
	// the records name, so that Finish can go on up from there (a pod whose record could not
	// name the CronJob above its Job, when the Job's own record does).
	owners  map[Workload]*OwnerCount
	parents map[Workload]Workload
}

// Workload is an object of a namespace.
type Workload struct {
	Namespace string `json:"namespace"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
}

// String returns "Kind/name".
func (w Workload) String() string { return w.Kind + "/" + w.Name }

// OwnerCount counts the records of one owner workload: its own and those of every object
// below it (a CronJob's, its Jobs' and their pods').
type OwnerCount struct {
	Workload
	Records  int            `json:"records"`
	Events   map[string]int `json:"events"`
	Rules    map[string]int `json:"rules"`
	Warnings map[string]int `json:"warnings"`
}

func compareWorkloads(a, b Workload) int {
	return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
}

func newOwnerCount(w Workload) *OwnerCount {
	return &OwnerCount{Workload: w, Events: map[string]int{}, Rules: map[string]int{}, Warnings: map[string]int{}}
}

// Bucket is the number of records from Start for the summary's bucket width.
type Bucket struct {
	Start time.Time `json:"start"`
	Count int       `json:"count"`
}

// NewSummary returns an empty summary whose histogram has buckets of width (an hour if 0),
// counting records by the breakdowns by (DefaultBreakdowns if none). It fails on a breakdown
// it does not know.
func NewSummary(width time.Duration, by ...string) (*Summary, error) {
	if width <= 0 {
		width = time.Hour
	}
	if len(by) == 0 {
		by = DefaultBreakdowns
	}
	s := &Summary{BucketWidth: width, bucketCounts: map[time.Time]int{}}
	for _, b := range by {
		if slices.Contains(s.By, b) {
			continue
		}
		s.By = append(s.By, b)
		switch b {
		case ByEvent:
			s.Events = map[string]int{}
		case ByRule:
			s.Rules = map[string]int{}
		case ByWarning:
			s.Warnings = map[string]int{}
		case ByNamespace:
			s.Namespaces = map[string]int{}
		case ByUser:
			s.Users = map[string]int{}
		case ByCredential:
			s.Credentials = map[string]int{}
		case ByOwner:
			s.owners, s.parents = map[Workload]*OwnerCount{}, map[Workload]Workload{}
		default:
			return nil, fmt.Errorf("no breakdown %q: use %s", b, strings.Join(Breakdowns, ", "))
		}
	}
	return s, nil
}

// Add counts r. A rule or credential counts once per record, however many violations name it.
func (s *Summary) Add(r *Record) {
	s.Records++
	count(s.Events, string(r.Event))
	count(s.Namespaces, r.Namespace)
	count(s.Users, r.User)
	if s.Credentials != nil {
		for _, c := range slices.Compact(slices.Sorted(slices.Values(r.Credentials))) {
			s.Credentials[c]++
		}
	}
	refused, warned := map[string]bool{}, map[string]bool{}
	for i := range r.Violations {
		v := &r.Violations[i]
		if r.ActionOf(v) == ActionDeny {
			refused[v.Rule] = true
		} else {
			warned[v.Rule] = true
		}
	}
	for rule := range refused {
		count(s.Rules, rule)
	}
	for rule := range warned {
		count(s.Warnings, rule)
	}
	if s.owners != nil {
		o := s.owners[s.link(r)]
		o.Records++
		o.Events[string(r.Event)]++
		for rule := range refused {
			o.Rules[rule]++
		}
		for rule := range warned {
			o.Warnings[rule]++
		}
	}
	s.bucketCounts[r.Time.UTC().Truncate(s.BucketWidth)]++
}

// count adds one to m[k], unless m is a breakdown not asked for.
func count(m map[string]int, k string) {
	if m != nil {
		m[k]++
	}
}

// link notes the owner links r names (the first seen of an object wins), and returns the
// count of the top of its chain: the object itself if it has no owner.
func (s *Summary) link(r *Record) Workload {
	w := Workload{Namespace: r.Namespace, Kind: r.Kind, Name: r.Name}
	for o := r.Owner; o != nil; o = o.Owner {
		up := Workload{Namespace: r.Namespace, Kind: o.Kind, Name: o.Name}
		if _, ok := s.parents[w]; !ok {
			s.parents[w] = up
		}
		w = up
	}
	if s.owners[w] == nil {
		s.owners[w] = newOwnerCount(w)
	}
	return w
}

// top returns the workload at the top of w's owner chain, as all records read together name
// it. memo keeps what earlier calls found, so that the chains are walked once however many
// counts share them; a cycle (of hostile records) stops where it closes.
func (s *Summary) top(w Workload, memo map[Workload]Workload) Workload {
	var path []Workload
	seen := map[Workload]bool{}
	for {
		if t, ok := memo[w]; ok {
			w = t
			break
		}
		up, ok := s.parents[w]
		if !ok || seen[w] {
			break
		}
		seen[w] = true
		path = append(path, w)
		w = up
	}
	for _, p := range path {
		memo[p] = w
	}
	return w
}

// maxBuckets bounds the histogram: past it, Finish doubles the bucket width until it fits.
const maxBuckets = 1000

// Finish fills the histogram, oldest bucket first, empty buckets included, and Owners.
func (s *Summary) Finish() {
	s.finishOwners()
	starts := slices.SortedFunc(maps.Keys(s.bucketCounts), func(a, b time.Time) int { return a.Compare(b) })
	s.Buckets = nil
	if len(starts) == 0 {
		return
	}
	for starts[len(starts)-1].Sub(starts[0])/s.BucketWidth >= maxBuckets {
		s.BucketWidth *= 2
		wider := map[time.Time]int{}
		for t, n := range s.bucketCounts {
			wider[t.Truncate(s.BucketWidth)] += n
		}
		s.bucketCounts = wider
		starts = slices.SortedFunc(maps.Keys(wider), func(a, b time.Time) int { return a.Compare(b) })
	}
	for t := starts[0]; !t.After(starts[len(starts)-1]); t = t.Add(s.BucketWidth) {
		s.Buckets = append(s.Buckets, Bucket{Start: t, Count: s.bucketCounts[t]})
	}
}

// finishOwners merges the counts of owners into those of the tops of their chains.
func (s *Summary) finishOwners() {
	if s.owners == nil {
		return
	}
	memo := map[Workload]Workload{}
	merged := map[Workload]*OwnerCount{}
	// In order, so that where a cycle of owners closes, and so its top, is the same every run.
	for _, w := range slices.SortedFunc(maps.Keys(s.owners), compareWorkloads) {
		c := s.owners[w]
		t := s.top(w, memo)
		m := merged[t]
		if m == nil {
			m = newOwnerCount(t)
			merged[t] = m
		}
		m.Records += c.Records
		for _, p := range [][2]map[string]int{{m.Events, c.Events}, {m.Rules, c.Rules}, {m.Warnings, c.Warnings}} {
			for k, n := range p[1] {
				p[0][k] += n
			}
		}
	}
	s.Owners = slices.SortedFunc(maps.Values(merged), func(a, b *OwnerCount) int {
		return cmp.Or(b.Records-a.Records, compareWorkloads(a.Workload, b.Workload))
	})
	if s.Owners == nil {
		s.Owners = []*OwnerCount{}
	}
}
