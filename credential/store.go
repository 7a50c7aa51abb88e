package credential

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
)

// Store reads Credentials. Implementations must be safe for concurrent use and must not let
// callers modify what they share: callers treat returned Credentials as read-only.
type Store interface {
	// Get returns the named Credential, or an error for which apierrors.IsNotFound is true.
	Get(ctx context.Context, namespace, name string) (*v1alpha1.Credential, error)
	// Names returns the sorted names of the Credentials in namespace.
	Names(ctx context.Context, namespace string) ([]string, error)
}

// ClientStore reads Credentials from an informer cache. On a cache miss it makes one direct
// GET, so a Credential created a moment ago is not refused while the informer catches up; a
// name the API server confirmed missing is not asked for again for MissTTL, so that a flood
// of requests naming credentials that do not exist costs the API server nothing.
type ClientStore struct {
	// Cache is the informer-backed reader (manager.GetCache()).
	Cache client.Reader
	// Live reads from the API server (manager.GetAPIReader()); used on a cache miss only.
	Live client.Reader
	// Now is the clock of the miss memory (nil: time.Now).
	Now func() time.Time
	// LiveLimit, if set, bounds the rate of live GETs: past it a cache miss is taken as the
	// answer (the Credential is reported missing), so that requests naming new, missing
	// names cannot make credgate flood the API server.
	LiveLimit *rate.Limiter

	mu     sync.Mutex
	misses map[client.ObjectKey]time.Time // confirmed misses, until when they are trusted
}

// DefaultLiveRate and DefaultLiveBurst bound live GETs on cache misses: a Credential created
// a moment ago is rare, a flood of names that do not exist is an attack.
const (
	DefaultLiveRate  = 20
	DefaultLiveBurst = 50
)

// Bounds of the memory of confirmed misses.
const (
	MissTTL   = 5 * time.Second
	maxMisses = 4096
)

var _ Store = (*ClientStore)(nil)

// Get implements Store.
func (s *ClientStore) Get(ctx context.Context, namespace, name string) (*v1alpha1.Credential, error) {
	c := &v1alpha1.Credential{}
	key := client.ObjectKey{Namespace: namespace, Name: name}
	err := s.Cache.Get(ctx, key, c)
	if !apierrors.IsNotFound(err) || s.Live == nil {
		if err != nil {
			return nil, err
		}
		return c, nil
	}
	if s.missedRecently(key) || s.LiveLimit != nil && !s.LiveLimit.Allow() {
		return nil, err
	}
	if err = s.Live.Get(ctx, key, c); err != nil {
		if apierrors.IsNotFound(err) {
			s.rememberMiss(key)
		}
		return nil, err
	}
	return c, nil
}

func (s *ClientStore) clock() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *ClientStore) missedRecently(key client.ObjectKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	until, ok := s.misses[key]
	return ok && s.clock().Before(until)
}

func (s *ClientStore) rememberMiss(key client.ObjectKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock()
	if len(s.misses) >= maxMisses {
		for k, until := range s.misses {
			if !now.Before(until) {
				delete(s.misses, k)
			}
		}
		if len(s.misses) >= maxMisses {
			clear(s.misses) // still full of fresh misses: forget them all, bounded either way
		}
	}
	if s.misses == nil {
		s.misses = make(map[client.ObjectKey]time.Time)
	}
	s.misses[key] = now.Add(MissTTL)
}

// Names implements Store. It lists from the cache, never from the API server.
func (s *ClientStore) Names(ctx context.Context, namespace string) ([]string, error) {
	var list v1alpha1.CredentialList
	if err := s.Cache.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("list credentials in namespace %s: %w", namespace, err)
	}
	names := make([]string, len(list.Items))
	for i := range list.Items {
		names[i] = list.Items[i].Name
	}
	slices.Sort(names)
	return names, nil
}

// StaticStore holds a fixed set of Credentials, for offline evaluation and tests.
type StaticStore struct {
	byNamespace map[string]map[string]*v1alpha1.Credential
}

var _ Store = (*StaticStore)(nil)

// NewStaticStore returns a store holding creds; a Credential without a namespace belongs to
// defaultNamespace.
func NewStaticStore(defaultNamespace string, creds ...*v1alpha1.Credential) *StaticStore {
	s := &StaticStore{byNamespace: map[string]map[string]*v1alpha1.Credential{}}
	for _, c := range creds {
		ns := c.Namespace
		if ns == "" {
			ns = defaultNamespace
		}
		if s.byNamespace[ns] == nil {
			s.byNamespace[ns] = map[string]*v1alpha1.Credential{}
		}
		s.byNamespace[ns][c.Name] = c
	}
	return s
}

// Get implements Store.
func (s *StaticStore) Get(_ context.Context, namespace, name string) (*v1alpha1.Credential, error) {
	if c, ok := s.byNamespace[namespace][name]; ok {
		return c, nil
	}
	return nil, apierrors.NewNotFound(v1alpha1.GroupVersion.WithResource("credentials").GroupResource(), name)
}

// Names implements Store.
func (s *StaticStore) Names(_ context.Context, namespace string) ([]string, error) {
	names := make([]string, 0, len(s.byNamespace[namespace]))
	for n := range s.byNamespace[namespace] {
		names = append(names, n)
	}
	slices.Sort(names)
	return names, nil
}
