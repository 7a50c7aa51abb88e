package manifests

import (
	"slices"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/credgate/credgate/workload"
)

// TestRBACReadsOwners: credgate serve may read every kind whose own owner the audit record
// names (workload.Kind.OwnedByWorkloads): a Job's CronJob, a RayCluster's RayJob.
func TestRBACReadsOwners(t *testing.T) {
	objs, err := Objects("rbac")
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	for _, o := range objs {
		if o.GetKind() == "ClusterRole" && o.GetName() == "credgate" {
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &role); err != nil {
				t.Fatal(err)
			}
		}
	}
	if role.Name == "" {
		t.Fatal("manifests/rbac has no ClusterRole credgate")
	}
	for _, k := range workload.Kinds {
		if !k.OwnedByWorkloads {
			continue
		}
		if !slices.ContainsFunc(role.Rules, func(r rbacv1.PolicyRule) bool {
			return slices.Contains(r.APIGroups, k.GVK.Group) && slices.Contains(r.Resources, k.Resource) && slices.Contains(r.Verbs, "get")
		}) {
			t.Errorf("ClusterRole credgate cannot get %s.%s: the audit record of its pods would not name its owner", k.Resource, k.GVK.Group)
		}
	}
}
