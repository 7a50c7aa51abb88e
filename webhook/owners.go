package webhook

import (
	"context"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/audit"
)

// ownerKinds are the owners whose own owner the audit record names: the CronJob above a Job,
// the Deployment above a ReplicaSet.
var ownerKinds = map[string]schema.GroupVersionKind{
	"Job":        {Group: "batch", Version: "v1", Kind: "Job"},
	"ReplicaSet": {Group: "apps", Version: "v1", Kind: "ReplicaSet"},
}

// apiOwners resolves owners with a metadata-only GET. It runs for audited decisions only
// (refusals, warnings), never for an admission that records nothing.
type apiOwners struct {
	reader client.Reader
}

var _ OwnerResolver = (*apiOwners)(nil)

// Owner implements OwnerResolver. An owner that cannot be read is left out: the record still
// names the object's own owner.
func (o *apiOwners) Owner(ctx context.Context, namespace, kind, name string) *audit.Owner {
	gvk, ok := ownerKinds[kind]
	if !ok {
		return nil
	}
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(gvk)
	if err := o.reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, m); err != nil {
		return nil
	}
	for _, ref := range m.OwnerReferences {
		if ref.Controller != nil && *ref.Controller {
			return &audit.Owner{Kind: ref.Kind, Name: ref.Name}
		}
	}
	return nil
}
