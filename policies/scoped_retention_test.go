package policies

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
)

// TestScopedKeepsOneValuePerCredential: a Credential of ~230 KiB (valid) updated a thousand
// times (its tenant toggling a label, the refresher updating its status) gets a new input value
// each time; the scoped rules keep only its latest, so its old revisions are let go rather than
// pile up (the ValueCache holds one value per Credential too).
func TestScopedKeepsOneValuePerCredential(t *testing.T) {
	rev, err := Load(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	engine := NewEngine(rev)
	cache := &ValueCache{}
	big := strings.Repeat("x", 32768)
	pod := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"x"}]}}`)
	measure := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before, keptBefore := measure(), len(rev.scoped.kept) // the canary's sample credentials

	const updates = 1000
	for i := range updates {
		// As an informer decodes each new resourceVersion: its own strings.
		var env []v1alpha1.EnvVar
		for j := range 7 {
			v := strings.Clone(big)
			env = append(env, v1alpha1.EnvVar{Name: fmt.Sprintf("V%d", j), Value: &v})
		}
		c := &v1alpha1.Credential{
			ObjectMeta: metav1.ObjectMeta{Name: "big", Namespace: "t", UID: "uid-big", ResourceVersion: strconv.Itoa(i + 1), Generation: 1},
			Spec:       v1alpha1.CredentialSpec{Type: v1alpha1.TypeGeneric, Env: env},
		}
		r, err := credential.Resolve(c)
		if err != nil {
			t.Fatal(err)
		}
		in := Input{Operation: "CREATE", Namespace: "t", Kind: "Pod", Version: "v1", DryRun: true, Object: pod,
			Credentials: []credential.Resolved{r}, Targets: []string{"c"}, Cache: cache}
		v, err := in.Value()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := engine.Evaluate(t.Context(), v); err != nil {
			t.Fatal(err)
		}
	}
	retained := int64(measure()) - int64(before)
	t.Logf("after %d updates of one ~230 KiB Credential: %d MiB retained, %d values kept by the scoped rules", updates, retained>>20, len(rev.scoped.kept))
	if n := len(rev.scoped.kept) - keptBefore; retained > 16<<20 || n != 1 {
		t.Errorf("one Credential's %d revisions keep %d MiB alive, %d values kept by the scoped rules; want one", updates, retained>>20, n)
	}
}
