// Package manifests builds credgate's kustomizations as `kubectl apply -k` does, for the
// release's rendered manifests (manifests/render) and the tests that compare them with the
// Helm chart or dry-run them against a real API server.
package manifests

import (
	"fmt"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// Build runs kustomize on dir.
func Build(dir string) (resmap.ResMap, error) {
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	return rm, nil
}

// Objects runs kustomize on dir and returns the objects it renders, in order.
func Objects(dir string) ([]*unstructured.Unstructured, error) {
	rm, err := Build(dir)
	if err != nil {
		return nil, err
	}
	objs := make([]*unstructured.Unstructured, 0, rm.Size())
	for _, r := range rm.Resources() {
		m, err := r.Map()
		if err != nil {
			return nil, err
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	return objs, nil
}
