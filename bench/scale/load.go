package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/mutate"
	"github.com/credgate/credgate/workload"
)

// forEach runs do for 0 ≤ i < n on workers goroutines, printing progress every tenth of n,
// and returns the first error (the others stop at their next item).
func forEach(ctx context.Context, n, workers int, what string, do func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var next, finished atomic.Int64
	started := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				if err := do(ctx, i); err != nil {
					cancel(err)
					return
				}
				if f := finished.Add(1); n >= 10 && f%int64(n/10) == 0 {
					fmt.Fprintf(os.Stderr, "   %s: %d/%d in %s\n", what, f, n, time.Since(started).Round(100*time.Millisecond))
				}
			}
		})
	}
	wg.Wait()
	return context.Cause(ctx)
}

// createTenants creates namespaces 0 ≤ i < n, each with its Secrets and Credentials
// (tenantCredentials), on workers goroutines.
func createTenants(ctx context.Context, c client.Client, n, workers int) error {
	return forEach(ctx, n, workers, "namespaces created", func(ctx context.Context, i int) error {
		creds, secrets := tenantCredentials(i)
		objs := []client.Object{tenant(i)}
		for j := range creds {
			objs = append(objs, secrets[j], creds[j])
		}
		for _, o := range objs {
			if err := c.Create(ctx, o); err != nil {
				return fmt.Errorf("create %T %s/%s: %w", o, o.GetNamespace(), o.GetName(), err)
			}
		}
		return nil
	})
}

// injected is what an admitted pod came back with, beyond what it was sent with.
type injected struct {
	env, mounts, volumes, pullSecrets int
}

// admitAll creates the training pod of every namespace 0 ≤ i < n with dry-run, on workers
// goroutines — the API server admits it, calling credgate's webhooks, and stores nothing —
// and checks that each came back patched by credgate: its credgate.dev/injected annotation
// names every Credential of the namespace. It returns what the first pod was given.
func admitAll(ctx context.Context, c client.Client, n, workers int) (injected, error) {
	var first injected
	err := forEach(ctx, n, workers, "pods admitted (dry-run)", func(ctx context.Context, i int) error {
		sent := trainingPod(namespaceName(i))
		pod := sent.DeepCopy()
		if err := c.Create(ctx, pod, client.DryRunAll); err != nil {
			return fmt.Errorf("dry-run create pod %s/%s: %w", pod.Namespace, pod.Name, err)
		}
		names, ok := mutate.InjectedNames(pod.Annotations[workload.InjectedAnnotation])
		if !ok || !sameNames(names, credentialNames) {
			return fmt.Errorf("pod %s/%s came back without credgate's injection of all its Credentials: %s=%q",
				pod.Namespace, pod.Name, workload.InjectedAnnotation, pod.Annotations[workload.InjectedAnnotation])
		}
		if i == 0 {
			first = injected{
				env:         len(pod.Spec.Containers[0].Env) - len(sent.Spec.Containers[0].Env),
				mounts:      len(pod.Spec.Containers[0].VolumeMounts) - len(sent.Spec.Containers[0].VolumeMounts),
				volumes:     len(pod.Spec.Volumes) - len(sent.Spec.Volumes),
				pullSecrets: len(pod.Spec.ImagePullSecrets) - len(sent.Spec.ImagePullSecrets),
			}
		}
		return nil
	})
	return first, err
}

// sameNames reports whether a and b hold the same names, in any order.
func sameNames(a, b []string) bool {
	a, b = slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b))
	return slices.Equal(a, b)
}

// warnings counts the API server's warnings to this program's client, by the rule id the
// warning names ("[static-credentials] ..."): credgate's warnings reach the client of an
// admission, dry-run or not.
type warnings struct {
	mu     sync.Mutex
	byRule map[string]int
}

// HandleWarningHeaderWithContext implements rest.WarningHandlerWithContext.
func (w *warnings) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	rule := "other"
	if _, rest, ok := strings.Cut(text, "["); ok {
		if id, _, ok := strings.Cut(rest, "]"); ok {
			rule = id
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.byRule == nil {
		w.byRule = map[string]int{}
	}
	w.byRule[rule]++
}

// String lists the counts by rule.
func (w *warnings) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var parts []string
	for _, rule := range slices.Sorted(maps.Keys(w.byRule)) {
		parts = append(parts, fmt.Sprintf("%s %d", rule, w.byRule[rule]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// decoded is what the Credentials take as this process decodes them: the objects credgate's
// informer holds, measured here since credgate serve serves no heap profile.
type decoded struct {
	count int
	// heap is the live Go heap the decoded, trimmed Credentials hold; json their encoded size
	// (what the API server sends), both in bytes.
	heap, json int64
	// list is how long one List of them all took, asked as an informer's first list asks
	// (resourceVersion 0: from the API server's watch cache) and decoded in this process: the
	// median of three.
	list time.Duration
}

// measureDecoded lists every Credential from the API server, as credgate's informer does, trims
// each as credgate does (no managed fields), and measures the live heap they hold.
func measureDecoded(ctx context.Context, c client.Reader) (decoded, error) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	list := &v1alpha1.CredentialList{}
	if err := c.List(ctx, list); err != nil {
		return decoded{}, err
	}
	// The informer holds a pointer per object, each allocated on its own.
	objs := make([]*v1alpha1.Credential, len(list.Items))
	for i := range list.Items {
		objs[i] = list.Items[i].DeepCopy()
		objs[i].ManagedFields = nil
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	d := decoded{count: len(objs), heap: int64(after.HeapAlloc) - int64(before.HeapAlloc)}
	for _, o := range objs {
		b, err := json.Marshal(o)
		if err != nil {
			return decoded{}, err
		}
		d.json += int64(len(b))
	}
	runtime.KeepAlive(objs)
	if d.count == 0 {
		return d, errors.New("no Credentials listed")
	}
	var took []time.Duration
	for range 3 {
		t := time.Now()
		if err := c.List(ctx, &v1alpha1.CredentialList{}, &client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: "0"}}); err != nil {
			return decoded{}, err
		}
		took = append(took, time.Since(t))
	}
	slices.Sort(took)
	d.list = took[1]
	return d, nil
}
