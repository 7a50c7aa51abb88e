package webhook

import (
	"context"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/audit"
	"github.com/credgate/credgate/workload"
)

// apiOwners resolves owners with a metadata-only GET. It runs for audited decisions only
// (refusals, warnings), never for an admission that records nothing. What it found is kept for
// ownerTTL, so that the pods of one Job — refused or warned alike, one after the other, from
// one template — cost one GET, not one each under the client's rate limit; and a GET that
// takes longer than ownerTimeout is given up (the record then names the object's own owner).
type apiOwners struct {
	reader client.Reader
	now    func() time.Time

	mu   sync.Mutex
	kept map[ownerKey]keptOwner
	// unserved are the kinds the API server said it does not serve (no CRD), and when: their
	// lookups are skipped for unservedTTL, whatever object a forged reference names.
	unserved map[schema.GroupKind]time.Time
}

type ownerKey struct {
	namespace, group, kind, name string
	uid                          types.UID
}

type keptOwner struct {
	owner *audit.Owner
	at    time.Time
}

const (
	// ownerTTL is how long an owner's owner found is kept: a Job's controller (its CronJob)
	// does not change.
	ownerTTL = 5 * time.Minute
	// ownerTimeout bounds one lookup.
	ownerTimeout = time.Second
	// maxOwners bounds the owners kept.
	maxOwners = 4096
	// unservedTTL is how long a kind the API server does not serve is not looked up.
	unservedTTL = time.Minute
)

func newAPIOwners(reader client.Reader) *apiOwners {
	return &apiOwners{reader: reader, now: time.Now, kept: map[ownerKey]keptOwner{}, unserved: map[schema.GroupKind]time.Time{}}
}

var _ OwnerResolver = (*apiOwners)(nil)

// Owner implements OwnerResolver, for owners of the kinds workload.OwnerAbove names (the
// CronJob above a Job, the RayJob above a RayCluster, the Deployment above a ReplicaSet). An
// owner that cannot be read, or is not the object of ref's UID, is left out: the record still
// names the object's own owner. What is found is kept by the owner's UID, so a Job deleted
// and created again under its name is looked up afresh.
func (o *apiOwners) Owner(ctx context.Context, namespace string, ref metav1.OwnerReference) *audit.Owner {
	gvk, ok := workload.OwnerAbove(ref.APIVersion, ref.Kind)
	if !ok {
		return nil
	}
	name, uid := ref.Name, ref.UID
	key := ownerKey{namespace, gvk.Group, gvk.Kind, name, uid}
	now := o.now()
	o.mu.Lock()
	k, ok := o.kept[key]
	since, unserved := o.unserved[gvk.GroupKind()]
	o.mu.Unlock()
	if ok && now.Sub(k.at) < ownerTTL {
		return k.owner
	}
	if unserved && now.Sub(since) < unservedTTL {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, ownerTimeout)
	defer cancel()
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(gvk)
	err := o.reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, m)
	if meta.IsNoMatchError(err) {
		// No CRD for the kind: a reference to one is forged, or the CRD is gone.
		o.mu.Lock()
		o.unserved[gvk.GroupKind()] = now
		o.mu.Unlock()
		return nil
	}
	if err != nil && !apierrors.IsNotFound(err) {
		return nil // not kept: the next record tries again
	}
	var owner *audit.Owner
	if err == nil && uid != "" && m.UID != uid {
		// Another object of the same name than the one the reference names (recreated):
		// its owner is not the object's.
		m.OwnerReferences = nil
	}
	for _, ref := range m.OwnerReferences {
		if ref.Controller != nil && *ref.Controller {
			owner = &audit.Owner{Kind: ref.Kind, Name: ref.Name}
			break
		}
	}
	o.mu.Lock()
	if len(o.kept) >= maxOwners {
		clear(o.kept)
	}
	o.kept[key] = keptOwner{owner: owner, at: now}
	o.mu.Unlock()
	return owner
}
