package credential

import (
	"context"
	"fmt"
	"testing"
	"time"

	"golang.org/x/time/rate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// missingReader finds nothing and counts the lookups.
type missingReader struct{ gets int }

func (r *missingReader) Get(_ context.Context, key client.ObjectKey, _ client.Object, _ ...client.GetOption) error {
	r.gets++
	return apierrors.NewNotFound(schema.GroupResource{Group: "credgate.dev", Resource: "credentials"}, key.Name)
}

func (r *missingReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return nil
}

// A flood of lookups of a Credential that does not exist costs one GET per name and MissTTL.
func TestClientStoreRemembersMisses(t *testing.T) {
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	live := &missingReader{}
	s := &ClientStore{Cache: &missingReader{}, Live: live, Now: func() time.Time { return now }}
	for range 1000 {
		if _, err := s.Get(t.Context(), "ns", "ghost"); !apierrors.IsNotFound(err) {
			t.Fatalf("err %v, want NotFound", err)
		}
	}
	if live.gets != 1 {
		t.Errorf("%d live GETs for one missing name, want 1", live.gets)
	}
	now = now.Add(MissTTL)
	if _, err := s.Get(t.Context(), "ns", "ghost"); !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	if live.gets != 2 {
		t.Errorf("%d live GETs after the miss expired, want 2", live.gets)
	}
	for i := range 3 * maxMisses {
		_, _ = s.Get(t.Context(), "ns", "ghost-"+string(rune('a'+i%26))+time.Duration(i).String())
	}
	if n := len(s.misses); n > maxMisses {
		t.Errorf("%d misses remembered, want at most %d", n, maxMisses)
	}
}

// Fresh missing names past the live rate are answered from the cache alone.
func TestClientStoreLiveLimit(t *testing.T) {
	live := &missingReader{}
	s := &ClientStore{Cache: &missingReader{}, Live: live, LiveLimit: rate.NewLimiter(0, 5)}
	for i := range 100 {
		if _, err := s.Get(t.Context(), "ns", fmt.Sprintf("ghost-%d", i)); !apierrors.IsNotFound(err) {
			t.Fatalf("err %v, want NotFound", err)
		}
	}
	if live.gets != 5 {
		t.Errorf("%d live GETs for 100 fresh names, want the burst of 5", live.gets)
	}
}
