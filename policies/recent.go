package policies

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The ring of recent inputs an Engine keeps for the reload canary. Its memory is bounded:
// at most maxRecentInputs inputs, each at most maxRecentInputBytes by inputSize's estimate —
// 16 × 256 KiB = 4 MiB at worst, a few hundred KiB for ordinary pods (an input is 10-50 KiB).
// Larger inputs are not kept. An input is kept at most once per recentInterval, so that the
// cost of keeping one (estimating its size, a lock) is nothing under load.
const (
	maxRecentInputs     = 16
	maxRecentInputBytes = 256 << 10
	recentInterval      = time.Second
)

// recentInputs is a ring of input values that evaluated without error. Values are immutable
// and shared with the requests that built them.
type recentInputs struct {
	// last is when an input was last kept, in Unix nanoseconds.
	last atomic.Int64

	mu     sync.Mutex
	inputs [maxRecentInputs]ast.Value
	next   int
}

// claim reports whether an input may be kept at now: none was kept in the recentInterval
// before, and no other caller claimed it first.
func (r *recentInputs) claim(now time.Time) bool {
	last := r.last.Load()
	return now.UnixNano()-last >= int64(recentInterval) && r.last.CompareAndSwap(last, now.UnixNano())
}

// keep keeps v, a claimed input, unless it is too large.
func (r *recentInputs) keep(v ast.Value) {
	if inputSize(v, maxRecentInputBytes) > maxRecentInputBytes {
		return
	}
	r.add(v)
}

func (r *recentInputs) add(v ast.Value) {
	r.mu.Lock()
	r.inputs[r.next] = v
	r.next = (r.next + 1) % maxRecentInputs
	r.mu.Unlock()
}

// snapshot returns the inputs kept, newest first.
func (r *recentInputs) snapshot() []ast.Value {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]ast.Value, 0, maxRecentInputs)
	for i := range maxRecentInputs {
		if v := r.inputs[(r.next-1-i+2*maxRecentInputs)%maxRecentInputs]; v != nil {
			out = append(out, v)
		}
	}
	return out
}

// termBytes is what inputSize counts for each term beside its text: the term, its value and
// the collection's share of it.
const termBytes = 64

// inputSize estimates the memory v holds: termBytes per term plus the bytes of its strings and
// numbers. It stops counting past limit, so it costs at most about limit/termBytes steps.
func inputSize(v ast.Value, limit int) int {
	n := 0
	var walk func(v ast.Value) bool // reports whether to stop
	walk = func(v ast.Value) bool {
		n += termBytes
		switch x := v.(type) {
		case ast.String:
			n += len(x)
		case ast.Number:
			n += len(x)
		case ast.Object:
			x.Until(func(k, e *ast.Term) bool { return walk(k.Value) || walk(e.Value) })
		case *ast.Array:
			x.Until(func(e *ast.Term) bool { return walk(e.Value) })
		case ast.Set:
			x.Until(func(e *ast.Term) bool { return walk(e.Value) })
		}
		return n > limit
	}
	walk(v)
	return n
}
