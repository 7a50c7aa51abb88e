package policies

import (
	"encoding/json"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"k8s.io/apimachinery/pkg/types"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
)

// maxCachedCredentials bounds a ValueCache (a value is a few kilobytes): past it, the cache
// starts afresh rather than grow with every Credential of the cluster, or ones deleted long ago.
const maxCachedCredentials = 1024

// maxCachedBytes bounds a ValueCache by the size of the Credentials it holds the values of
// (their JSON): a Credential may weigh up to 256 KiB.
const maxCachedBytes = 32 << 20

// ValueCache keeps what credgate derives from each Credential revision alone: the Credential
// resolved (Resolve), and its input value. A Credential changes far less often than pods
// start, so a pod requesting three credentials reuses three of each instead of building them:
// about half the allocations of its input. Both are immutable and shared by concurrent
// requests. The zero value is ready to use; a nil *ValueCache caches nothing.
type ValueCache struct {
	mu    sync.Mutex
	m     map[types.UID]cachedValue
	bytes int
}

// cachedValue is what is kept of one Credential revision; a part not derived yet is nil.
type cachedValue struct {
	resourceVersion string
	value           ast.Value
	resolved        *resolution
}

// resolution is what credential.Resolve returned.
type resolution struct {
	r   credential.Resolved
	err error
}

// Resolve is credential.Resolve(c), from the cache when c's revision is there. Only a
// Credential an API server stored (with a UID and a resourceVersion) is cached. The Resolved
// returned shares its slices with every other request's: never modify them.
func (c *ValueCache) Resolve(cred *v1alpha1.Credential) (credential.Resolved, error) {
	if c == nil || cred.UID == "" || cred.ResourceVersion == "" {
		return credential.Resolve(cred)
	}
	c.mu.Lock()
	e, ok := c.m[cred.UID]
	c.mu.Unlock()
	if ok && e.resourceVersion == cred.ResourceVersion && e.resolved != nil {
		r := e.resolved.r
		if e.resolved.err == nil {
			r.Source = cred // the same revision; this request's copy of it
		}
		return r, e.resolved.err
	}
	r, err := credential.Resolve(cred)
	c.keep(cred, func(e *cachedValue) { e.resolved = &resolution{r, err} })
	return r, err
}

// value returns r's input value, from the cache when r's Credential revision is there. Only a
// Credential an API server stored (with a UID and a resourceVersion) is cached.
func (c *ValueCache) value(r *credential.Resolved) (ast.Value, error) {
	src := r.Source
	if c == nil || src == nil || src.UID == "" || src.ResourceVersion == "" {
		return credentialValue(r)
	}
	c.mu.Lock()
	e, ok := c.m[src.UID]
	c.mu.Unlock()
	if ok && e.resourceVersion == src.ResourceVersion && e.value != nil {
		return e.value, nil
	}
	v, err := credentialValue(r)
	if err != nil {
		return nil, err
	}
	c.keep(src, func(e *cachedValue) { e.value = v })
	return v, nil
}

// keep sets, with set, a part of what is kept of src's revision: the entry of an older
// revision is replaced. Past maxCachedCredentials or maxCachedBytes the cache starts afresh.
func (c *ValueCache) keep(src *v1alpha1.Credential, set func(*cachedValue)) {
	size := 0
	if raw, err := json.Marshal(src); err == nil {
		size = len(raw)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCachedCredentials || c.bytes+size > maxCachedBytes {
		c.m, c.bytes = make(map[types.UID]cachedValue), 0
	}
	e, ok := c.m[src.UID]
	if !ok || e.resourceVersion != src.ResourceVersion {
		e = cachedValue{resourceVersion: src.ResourceVersion}
		c.bytes += size // an entry replaced is not subtracted: the bound errs towards starting afresh
	}
	set(&e)
	c.m[src.UID] = e
}
