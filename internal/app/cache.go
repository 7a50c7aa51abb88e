package app

import (
	"context"
	"maps"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/credgate/credgate/api/v1alpha1"
)

// lastApplied is the annotation kubectl apply keeps a copy of the whole object in.
const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

// trimCredential keeps of a Credential what credgate reads — all of it but its managed fields
// and kubectl's copy of it (the last-applied annotation) — so that the informer holds each
// Credential once.
func trimCredential(obj any) (any, error) {
	if c, ok := obj.(*v1alpha1.Credential); ok {
		c.ManagedFields = nil
		if _, ok := c.Annotations[lastApplied]; ok {
			c.Annotations = maps.Clone(c.Annotations)
			delete(c.Annotations, lastApplied)
		}
	}
	return obj, nil
}

// trimNamespace keeps of a Namespace what admission reads: its name, identity and labels.
func trimNamespace(obj any) (any, error) {
	if ns, ok := obj.(*corev1.Namespace); ok {
		return &corev1.Namespace{TypeMeta: ns.TypeMeta, ObjectMeta: metav1.ObjectMeta{
			Name: ns.Name, UID: ns.UID, ResourceVersion: ns.ResourceVersion, Labels: ns.Labels,
		}}, nil
	}
	return obj, nil
}

// clientNamespaces reads namespace labels from the informer cache, with one direct GET on a
// miss (a namespace created a moment ago).
type clientNamespaces struct {
	cache, live client.Reader
}

func (c *clientNamespaces) Labels(ctx context.Context, name string) (map[string]string, error) {
	ns := &corev1.Namespace{}
	err := c.cache.Get(ctx, client.ObjectKey{Name: name}, ns)
	if apierrors.IsNotFound(err) {
		err = c.live.Get(ctx, client.ObjectKey{Name: name}, ns)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ns.Labels, nil
}
