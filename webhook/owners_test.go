package webhook

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/audit"
)

// countingReader answers metadata GETs of Jobs from jobs (name → controller CronJob, "" for
// none), counting them; a name not in jobs is not found, "broken" fails.
type countingReader struct {
	jobs map[string]string
	gets int
}

func (r *countingReader) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	r.gets++
	if key.Name == "broken" {
		return errors.New("connection refused")
	}
	if gvk := obj.GetObjectKind().GroupVersionKind(); gvk.Group == "ray.io" {
		// No KubeRay in this cluster.
		return &meta.NoKindMatchError{GroupKind: gvk.GroupKind(), SearchedVersions: []string{gvk.Version}}
	}
	owner, ok := r.jobs[key.Name]
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Group: "batch", Resource: "jobs"}, key.Name)
	}
	obj.SetUID(types.UID("uid-" + key.Name))
	if owner != "" {
		obj.SetOwnerReferences([]metav1.OwnerReference{{Kind: "CronJob", Name: owner, Controller: new(true)}})
	}
	return nil
}

func (r *countingReader) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("not listed")
}

// TestOwnersAreKept: the pods of one Job cost one lookup of its owner, for ownerTTL; a Job not
// found is kept as having none; a failed lookup is not kept; a Job of the name but not the UID
// referenced (recreated) names no owner.
func TestOwnersAreKept(t *testing.T) {
	r := &countingReader{jobs: map[string]string{"nightly-1": "nightly", "adhoc": ""}}
	o := newAPIOwners(r)
	now := time.Now()
	o.now = func() time.Time { return now }
	for range 5 {
		if got := o.Owner(t.Context(), "ml", ownerRef("Job", "nightly-1", "uid-nightly-1")); got == nil || *got != (audit.Owner{Kind: "CronJob", Name: "nightly"}) {
			t.Fatalf("owner = %+v", got)
		}
	}
	if r.gets != 1 {
		t.Errorf("%d lookups for five pods of one Job, want 1", r.gets)
	}
	for _, name := range []string{"adhoc", "gone", "adhoc", "gone"} {
		if got := o.Owner(t.Context(), "ml", ownerRef("Job", name, types.UID("uid-"+name))); got != nil {
			t.Errorf("owner of %s = %+v, want none", name, got)
		}
	}
	if r.gets != 3 {
		t.Errorf("%d lookups, want 3 (an owner-less and a missing Job kept too)", r.gets)
	}
	o.Owner(t.Context(), "ml", ownerRef("Job", "broken", "uid-broken"))
	o.Owner(t.Context(), "ml", ownerRef("Job", "broken", "uid-broken"))
	if r.gets != 5 {
		t.Errorf("%d lookups, want 5 (a failed lookup is not kept)", r.gets)
	}
	now = now.Add(ownerTTL)
	o.Owner(t.Context(), "ml", ownerRef("Job", "nightly-1", "uid-nightly-1"))
	if r.gets != 6 {
		t.Errorf("%d lookups, want 6 (an owner is looked up again after ownerTTL)", r.gets)
	}
	if o.Owner(t.Context(), "ml", ownerRef("ReplicaSet", "x", "uid-x")); r.gets != 7 {
		t.Errorf("%d lookups, want 7", r.gets)
	}
	if o.Owner(t.Context(), "ml", ownerRef("Pod", "x", "uid-x")) != nil || r.gets != 7 {
		t.Error("an owner kind credgate does not follow was looked up")
	}
	// A reference to an earlier Job of the same name: its owner is not the new Job's.
	if got := o.Owner(t.Context(), "ml", ownerRef("Job", "nightly-1", "uid-of-a-deleted-job")); got != nil || r.gets != 8 {
		t.Errorf("owner of a Job recreated under the name = %+v after %d lookups, want none after 8", got, r.gets)
	}
}

// ownerRef is a controller reference to the kind (Job, ReplicaSet or Pod) name of uid.
func ownerRef(kind, name string, uid types.UID) metav1.OwnerReference {
	apiVersion := map[string]string{"Job": "batch/v1", "ReplicaSet": "apps/v1", "Pod": "v1"}[kind]
	return metav1.OwnerReference{APIVersion: apiVersion, Kind: kind, Name: name, UID: uid, Controller: new(true)}
}

// TestOwnersOfUnservedKinds: pods whose (forged) controller reference names a kind the cluster
// does not serve cost one lookup of that kind a minute, whatever object each names.
func TestOwnersOfUnservedKinds(t *testing.T) {
	r := &countingReader{}
	o := newAPIOwners(r)
	now := time.Now()
	o.now = func() time.Time { return now }
	ref := func(name string) metav1.OwnerReference {
		return metav1.OwnerReference{APIVersion: "ray.io/v1", Kind: "RayCluster", Name: name, UID: types.UID("uid-" + name), Controller: new(true)}
	}
	for i := range 100 {
		if got := o.Owner(t.Context(), "ml", ref(fmt.Sprint("forged-", i))); got != nil {
			t.Fatalf("owner %+v of a kind the cluster does not serve", got)
		}
	}
	if r.gets != 1 {
		t.Errorf("%d lookups for 100 references to a kind not served, want 1", r.gets)
	}
	now = now.Add(unservedTTL)
	o.Owner(t.Context(), "ml", ref("later"))
	if r.gets != 2 {
		t.Errorf("%d lookups, want 2 (a kind not served is looked up again after unservedTTL: its CRD may have come)", r.gets)
	}
}
