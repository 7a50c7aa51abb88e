package policies

import (
	"encoding/json"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"k8s.io/apimachinery/pkg/types"

	"github.com/credgate/credgate/credential"
)

// maxCachedCredentials bounds a ValueCache (a value is a few kilobytes): past it, the cache
// starts afresh rather than grow with every Credential of the cluster, or ones deleted long ago.
const maxCachedCredentials = 1024

// maxCachedBytes bounds a ValueCache by the size of the Credentials it holds the values of
// (their JSON): a Credential may weigh up to 256 KiB.
const maxCachedBytes = 32 << 20

// ValueCache keeps the input value of each Credential revision. A Credential changes far less
// often than pods start, and its value (of the input's credentials) is built from it alone,
// so a pod requesting three credentials reuses three values instead of building them, about
// half the allocations of its input. Values are immutable and shared by concurrent requests.
// The zero value is ready to use; a nil *ValueCache caches nothing.
type ValueCache struct {
	mu    sync.Mutex
	m     map[types.UID]cachedValue
	bytes int
}

type cachedValue struct {
	resourceVersion string
	value           ast.Value
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
	if ok && e.resourceVersion == src.ResourceVersion {
		return e.value, nil
	}
	v, err := credentialValue(r)
	if err != nil {
		return nil, err
	}
	size := 0
	if raw, err := json.Marshal(src); err == nil {
		size = len(raw)
	}
	c.mu.Lock()
	if c.m == nil || len(c.m) >= maxCachedCredentials || c.bytes+size > maxCachedBytes {
		c.m, c.bytes = make(map[types.UID]cachedValue), 0
	}
	c.m[src.UID] = cachedValue{resourceVersion: src.ResourceVersion, value: v}
	c.bytes += size
	c.mu.Unlock()
	return v, nil
}
