package review

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"io"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"k8s.io/apimachinery/pkg/types"

	"github.com/credgate/credgate/credential"
	"github.com/credgate/credgate/policies"
)

// Key identifies an admission by everything a decision reads of the request: the webhook
// (mutating or validating, and its kind), the operation, namespace, name, user, groups,
// dry-run flag, and the object's bytes as submitted — all of them but its managed fields when
// no policy may read those. A Job's pods are created from one template, by one controller,
// with the name still to be generated: they have one Key, though the API server stamps each
// one's managed fields with the second it was created at.
type Key [sha256.Size]byte

// KeyRequest is what a Key is made of.
type KeyRequest struct {
	Webhook, Operation, Namespace, Name, User string
	Groups                                    []string
	DryRun                                    bool
	Object                                    []byte
	// IgnoreManagedFields leaves the object's metadata.managedFields out of the Key: for a
	// policy revision that cannot read them (Reviewer.IgnoresManagedFields). Nothing else
	// credgate decides or patches reads them.
	IgnoreManagedFields bool
}

var hashes = sync.Pool{New: func() any { return sha256.New() }}

// KeyOf returns the Key of r. Every field is written with its length, so no two requests
// share a preimage.
func KeyOf(r KeyRequest) Key {
	h := hashes.Get().(hash.Hash)
	defer hashes.Put(h)
	h.Reset()
	var n [8]byte
	field := func(s string) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(r.Webhook)
	field(r.Operation)
	field(r.Namespace)
	field(r.Name)
	field(r.User)
	binary.LittleEndian.PutUint64(n[:], uint64(len(r.Groups)))
	h.Write(n[:])
	for _, g := range r.Groups {
		field(g)
	}
	if r.DryRun {
		h.Write([]byte{1})
	} else {
		h.Write([]byte{0})
	}
	part := func(b []byte) {
		binary.LittleEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	var start, end int
	ok := false
	if r.IgnoreManagedFields {
		start, end, ok = managedFields(r.Object)
	}
	if ok {
		// What comes before the member's value and what comes after it.
		h.Write([]byte{1})
		part(r.Object[:start])
		part(r.Object[end:])
	} else {
		h.Write([]byte{0})
		part(r.Object)
	}
	var k Key
	h.Sum(k[:0])
	return k
}

// managedFields returns where the value of metadata.managedFields lies in raw, a JSON object:
// from just after its member name to the end of its value. ok is false when raw is not a JSON
// object, has no such member, or has either name twice (the API server writes no name twice:
// such an object is keyed whole). Names are compared as written: the API server escapes no
// letter, and a name written otherwise is another member, kept in the Key.
func managedFields(raw []byte) (start, end int, ok bool) {
	// Only the two names on the way are checked for repeats: the bytes of any other member
	// are in the Key, repeated or not; the decoder's own check of every object costs more
	// than the rest of this.
	dec := jsontext.NewDecoder(bytes.NewBuffer(raw), jsontext.AllowDuplicateNames(true)) // reads raw in place
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return 0, 0, false
	}
	metadata := 0
	for dec.PeekKind() == '"' {
		name, err := dec.ReadValue() // valid until the next read
		if err != nil {
			return 0, 0, false
		}
		if string(name) != `"metadata"` {
			if dec.SkipValue() != nil {
				return 0, 0, false
			}
			continue
		}
		if metadata++; metadata > 1 || dec.PeekKind() != '{' {
			return 0, 0, false
		}
		if _, err := dec.ReadToken(); err != nil {
			return 0, 0, false
		}
		for dec.PeekKind() == '"' {
			name, err := dec.ReadValue()
			if err != nil {
				return 0, 0, false
			}
			found := string(name) == `"managedFields"` // before the next read
			from := dec.InputOffset()
			if dec.SkipValue() != nil {
				return 0, 0, false
			}
			if found {
				if ok {
					return 0, 0, false
				}
				start, end, ok = int(from), int(dec.InputOffset()), true
			}
		}
		if _, err := dec.ReadToken(); err != nil { // }
			return 0, 0, false
		}
	}
	if _, err := dec.ReadToken(); err != nil { // }
		return 0, 0, false
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return 0, 0, false
	}
	return start, end, ok
}

// IgnoresManagedFields reports whether the policy revision served cannot read an object's
// managed fields (policies.Revision.ReadsManagedFields), so that they may be left out of a
// Key. A decision found by such a Key was made by that same revision — Get compares the
// revision's ID, a digest of its every module, datum and object — so it read none either.
func (r *Reviewer) IgnoresManagedFields() bool {
	rev, ok := revisionOf(r.Policy)
	return ok && !rev.ReadsManagedFields()
}

// inputs are what a decision read besides its request: the policy revision, each Credential
// at the version it was read, the namespace's labels (decide records them); and until when the
// clock allows it (the earliest status.expiresAt of its Credentials). Review fills them in when
// the decision may be reused (reusable).
type inputs struct {
	reusable    bool
	revision    string
	credentials []credentialVersion
	labels      map[string]string
	until       time.Time
}

type credentialVersion struct {
	name, resourceVersion string
	uid                   types.UID
}

// Decisions keeps recent decisions, so that an admission identical to one already decided —
// the next pod of a Job — reuses its decision and encoded patch instead of reviewing again.
// A decision is reused only while everything it read is unchanged, checked on every reuse:
// the policy revision served (one whose user policies call no non-deterministic function:
// policies.Revision.Deterministic), every Credential it resolved (same UID and
// resourceVersion, so any change to its spec or status), the namespace's labels, and the
// clock (before the earliest expiresAt of its Credentials). Only admissions that were
// admitted with every requested Credential found, nothing to audit, and no earlier object to
// compare (a CREATE) are kept. It holds at most Max entries, the oldest let go first. Safe for
// concurrent use; the zero value is not: use NewDecisions.
type Decisions struct {
	max int
	now func() time.Time

	hits, misses, stale atomic.Int64

	mu      sync.Mutex
	entries map[Key]*Reused
	order   []Key // insertion order, a ring of max keys
	next    int
	wrapped bool // every slot of order has been written
}

// Reused is a decision kept for reuse, with its patch encoded. Treat it as read-only: it is
// shared by every admission that reuses it.
type Reused struct {
	// Decision is the decision, without its patch operations (Decision.Patch is nil), and with
	// only the name and type of each resolved credential (Decision.Resolved).
	Decision Decision
	// Patch is the decision's patch encoded as JSON (nil when it was empty).
	Patch []byte
}

// DefaultMaxDecisions is NewDecisions' bound when given none: a burst of Jobs' pods, at a few
// kilobytes each.
const DefaultMaxDecisions = 512

// NewDecisions returns an empty cache of at most max decisions (DefaultMaxDecisions when
// max <= 0).
func NewDecisions(max int) *Decisions {
	if max <= 0 {
		max = DefaultMaxDecisions
	}
	return &Decisions{max: max, now: time.Now, entries: make(map[Key]*Reused, max), order: make([]Key, max)}
}

// Len returns how many decisions are kept.
func (c *Decisions) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// MaxReuseAge is the longest a decision is reused, whatever else allows it.
const MaxReuseAge = time.Minute

// MaxReusedBytes is the most a kept decision may weigh — its patch, warnings and credential
// names — so that a Decisions holds at most max × 32 KiB of them (a pod given ten credentials
// has a patch of a few kilobytes).
const MaxReusedBytes = 32 << 10

// Put keeps d, decided for the admission k, with its encoded patch, if d may be reused and
// weighs at most MaxReusedBytes.
func (c *Decisions) Put(k Key, d *Decision, patch []byte) {
	if c == nil || !d.inputs.reusable || weight(d, patch) > MaxReusedBytes {
		return
	}
	// The operations are kept encoded only: their values (every variable, mount and volume
	// injected) would double what an entry holds; and of the resolved credentials, what is read
	// after a reuse, their names and types.
	e := &Reused{Decision: *d, Patch: patch}
	// However unchanged its inputs, a decision is reused for MaxReuseAge at most: what no check
	// foresaw ends with it.
	if limit := c.now().Add(MaxReuseAge); e.Decision.inputs.until.IsZero() || limit.Before(e.Decision.inputs.until) {
		e.Decision.inputs.until = limit
	}
	e.Decision.Patch = nil
	e.Decision.Resolved = make([]credential.Resolved, len(d.Resolved))
	for i, r := range d.Resolved {
		e.Decision.Resolved[i] = credential.Resolved{Name: r.Name, Type: r.Type}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[k]; ok {
		c.entries[k] = e
		return
	}
	// Every key kept sits in a slot of the ring; the slot's next writer lets it go. So at most
	// max are kept, whatever Get dropped meanwhile.
	if c.wrapped {
		delete(c.entries, c.order[c.next])
	}
	c.entries[k] = e
	c.order[c.next] = k
	if c.next++; c.next == c.max {
		c.next, c.wrapped = 0, true
	}
}

// weight is roughly what keeping d with patch costs, in bytes.
func weight(d *Decision, patch []byte) int {
	n := len(patch)
	for _, w := range d.Warnings {
		n += len(w)
	}
	for _, v := range d.Warned {
		n += len(v.Message)
	}
	for _, name := range d.Credentials {
		n += len(name) + 64
	}
	return n
}

// Get returns the decision kept for k in namespace ns if everything it read is as it was:
// r's policy revision, Credentials and namespace labels are read again (from r's caches) and
// compared. A stale entry is dropped.
func (c *Decisions) Get(ctx context.Context, r *Reviewer, k Key, ns string) (*Reused, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	e, ok := c.entries[k]
	c.mu.Unlock()
	if !ok {
		c.misses.Add(1)
		return nil, false
	}
	if !r.current(ctx, ns, &e.Decision.inputs, c.now()) {
		c.stale.Add(1)
		c.mu.Lock()
		if c.entries[k] == e {
			delete(c.entries, k) // its slot in order is reused in turn
		}
		c.mu.Unlock()
		return nil, false
	}
	c.hits.Add(1)
	return e, true
}

// DecisionStats count the lookups of a Decisions.
type DecisionStats struct {
	// Hits reused a decision; Misses found none; Stale found one that something it read had
	// changed since.
	Hits, Misses, Stale int64
}

// Stats returns the counts so far.
func (c *Decisions) Stats() DecisionStats {
	return DecisionStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Stale: c.stale.Load()}
}

// current reports whether in still holds in namespace ns at now.
func (r *Reviewer) current(ctx context.Context, ns string, in *inputs, now time.Time) bool {
	if !in.until.IsZero() && !now.Before(in.until) {
		return false
	}
	rev, ok := revisionOf(r.Policy)
	if !ok || rev.ID() != in.revision || !rev.Deterministic() {
		return false
	}
	for _, cv := range in.credentials {
		c, err := r.Store.Get(ctx, ns, cv.name)
		if err != nil || c.UID != cv.uid || c.ResourceVersion != cv.resourceVersion {
			return false
		}
	}
	if r.Namespaces != nil {
		labels, err := r.Namespaces.Labels(ctx, ns)
		if err != nil || !maps.Equal(labels, in.labels) {
			return false
		}
	}
	return true
}

// revisioned is an Evaluator that tells which revision it evaluates with: *policies.Engine.
type revisioned interface {
	Current() *policies.Revision
}

func revisionOf(e Evaluator) (*policies.Revision, bool) {
	rv, ok := e.(revisioned)
	if !ok {
		return nil, false
	}
	rev := rv.Current()
	return rev, rev != nil
}

// recordInputs fills in d.inputs, for Decisions, when d may be reused: the request is a
// CREATE with every requested Credential found, admitted with nothing audited and no earlier
// injection taken away (that read Credentials the pod may no longer request), by a
// deterministic revision, from Credentials that carry a version.
func (r *Reviewer) recordInputs(req Request, missing []string, d *Decision) {
	if req.Old != nil || len(missing) > 0 || d.Denied() || len(d.Audited) > 0 || len(d.Credentials) == 0 ||
		len(d.Resolved) != len(d.Credentials) || d.Stripped != nil {
		return
	}
	rev, ok := revisionOf(r.Policy)
	if !ok || rev.ID() != d.PolicyRevision || !rev.Deterministic() {
		return
	}
	in := inputs{reusable: true, revision: d.PolicyRevision, labels: d.inputs.labels,
		credentials: make([]credentialVersion, 0, len(d.Resolved))}
	for i := range d.Resolved {
		src := d.Resolved[i].Source
		if src == nil || src.UID == "" || src.ResourceVersion == "" {
			return
		}
		in.credentials = append(in.credentials, credentialVersion{name: src.Name, uid: src.UID, resourceVersion: src.ResourceVersion})
		// The policy input carries expiresAt to the second, truncated: a policy sees the
		// Credential expire at that second, up to a second before it does.
		if exp := src.Status.ExpiresAt; exp != nil {
			if at := exp.Truncate(time.Second); in.until.IsZero() || at.Before(in.until) {
				in.until = at
			}
		}
	}
	d.inputs = in
}
