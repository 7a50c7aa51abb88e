package app

import (
	"strings"
	"testing"
)

// TestSyncedNamesItsInformer: a readiness check that fails says which informer has not
// synced — the Namespace cache's names Namespaces, not Credentials.
func TestSyncedNamesItsInformer(t *testing.T) {
	done := false
	check := synced("namespace", func() bool { return done })
	if err := check(nil); err == nil || !strings.Contains(err.Error(), "namespace informer") {
		t.Errorf("before the sync: %v, want the namespace informer named", err)
	}
	done = true
	if err := check(nil); err != nil {
		t.Errorf("after the sync: %v", err)
	}
}
