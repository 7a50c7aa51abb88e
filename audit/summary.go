package audit

import (
	"maps"
	"slices"
	"time"
)

// Summary counts records by event, rule, namespace, user and credential, and over time.
type Summary struct {
	Records      int            `json:"records"`
	Events       map[string]int `json:"events"`
	Rules        map[string]int `json:"rules"`
	Namespaces   map[string]int `json:"namespaces"`
	Users        map[string]int `json:"users"`
	Credentials  map[string]int `json:"credentials"`
	BucketWidth  time.Duration  `json:"-"`
	Buckets      []Bucket       `json:"histogram"`
	bucketCounts map[time.Time]int
}

// Bucket is the number of records from Start for the summary's bucket width.
type Bucket struct {
	Start time.Time `json:"start"`
	Count int       `json:"count"`
}

// NewSummary returns an empty summary whose histogram has buckets of width (an hour if 0).
func NewSummary(width time.Duration) *Summary {
	if width <= 0 {
		width = time.Hour
	}
	return &Summary{Events: map[string]int{}, Rules: map[string]int{}, Namespaces: map[string]int{},
		Users: map[string]int{}, Credentials: map[string]int{}, BucketWidth: width, bucketCounts: map[time.Time]int{}}
}

// Add counts r. A rule or credential counts once per record, however many violations name it.
func (s *Summary) Add(r *Record) {
	s.Records++
	s.Events[string(r.Event)]++
	s.Namespaces[r.Namespace]++
	s.Users[r.User]++
	rules := map[string]bool{}
	for _, v := range r.Violations {
		rules[v.Rule] = true
	}
	for rule := range rules {
		s.Rules[rule]++
	}
	for _, c := range r.Credentials {
		s.Credentials[c]++
	}
	s.bucketCounts[r.Time.UTC().Truncate(s.BucketWidth)]++
}

// maxBuckets bounds the histogram: past it, Finish doubles the bucket width until it fits.
const maxBuckets = 1000

// Finish fills the histogram, oldest bucket first, empty buckets included.
func (s *Summary) Finish() {
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
