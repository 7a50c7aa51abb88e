package workload

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Kind is what credgate knows of one kind of object that runs pods: where its pod templates
// sit, how a credential label on the object itself reaches them, and whether credgate serve
// admits it. Adding a kind is one entry in Kinds, plus its tests: the webhook handlers, the
// webhook configurations (manifests/webhook, the Helm chart: generated), credgate eval and the
// docs' table (docs/workloads.md) all follow from it.
type Kind struct {
	GVK schema.GroupVersionKind
	// Resource is the kind's plural resource name, for the webhook configurations' rules.
	Resource string
	// Templates are where its pod templates sit, in the order they are reviewed; none for a
	// Pod, which is its own pod.
	Templates []TemplatePath
	// Inherit are the metadata, nearest the templates first, whose credential labels every
	// pod template inherits (a template's own label wins): the object's own ["metadata"], and
	// a CronJob's job template's. Empty: the templates' labels alone count.
	Inherit [][]string
	// Operations are the operations credgate serve reviews (CREATE, UPDATE); nil for a kind it
	// does not admit (the apps/v1 workloads, which credgate eval reads).
	Operations []string
	// OwnedByWorkloads reports whether objects of this kind are themselves created by another
	// workload — a Job by a CronJob (or a RayJob), a RayCluster by a RayJob, a ReplicaSet by
	// a Deployment: the audit record of a pod one of them controls names that owner too.
	OwnedByWorkloads bool
	// FixedOnUpdate: credgate's validating webhook refuses an update of the object that
	// changes a credential label or a credgate.dev/ annotation (Pods).
	FixedOnUpdate bool
	// LabelFlow says, for docs/workloads.md, how a label reaches the kind's pods.
	LabelFlow string
	// Controller names, for docs/workloads.md, what creates the kind's pods.
	Controller string

	// typed is the Go type of a built-in kind; nil: decoded as unstructured.
	typed func() runtime.Object
}

// TemplatePath is where pod templates sit in an object, as JSON member names; "*" stands for
// every member of a map, "[]" for every item of a list.
type TemplatePath struct {
	Path []string
	// Name names the template in messages: "replica type %s", with the map key or, for a list
	// item, the item's ItemName member (its index when it has none), in place of %s.
	Name string
	// ItemName is the member that names a list item ("groupName").
	ItemName string
	// Own: the template inherits no label of the object's (Kind.Inherit).
	Own bool
}

// Wildcards in TemplatePath.Path.
const (
	AnyMember = "*"
	AnyItem   = "[]"
)

var (
	objectLabels = [][]string{{"metadata"}}
	create       = []string{"CREATE"}
)

// Kinds are the kinds credgate knows, built-in and custom. Pods get their credentials when
// they are created; a workload is decided when it is submitted — on each of its pod
// templates, as the pods it will run — and its templates only get the credential labels, so
// that every pod gets the Credentials as they are when it is created.
var Kinds = []Kind{
	{GVK: corev1.SchemeGroupVersion.WithKind("Pod"), Resource: "pods", Operations: create, FixedOnUpdate: true,
		LabelFlow: "the pod's own labels", Controller: "anything that creates pods",
		typed: func() runtime.Object { return &corev1.Pod{} }},
	// A Job's pod template is immutable: reviewed on create only.
	{GVK: batchv1.SchemeGroupVersion.WithKind("Job"), Resource: "jobs", Operations: create, OwnedByWorkloads: true,
		Templates: []TemplatePath{{Path: []string{"spec", "template"}}}, Inherit: objectLabels,
		LabelFlow: "the Job's labels → its pod template", Controller: "the Job controller (kube-controller-manager)",
		typed: func() runtime.Object { return &batchv1.Job{} }},
	// A CronJob's template may change: reviewed on update too, its labels following the
	// CronJob's (FollowLabels).
	{GVK: batchv1.SchemeGroupVersion.WithKind("CronJob"), Resource: "cronjobs", Operations: []string{"CREATE", "UPDATE"},
		Templates: []TemplatePath{{Path: []string{"spec", "jobTemplate", "spec", "template"}}},
		Inherit:   [][]string{{"spec", "jobTemplate", "metadata"}, {"metadata"}},
		LabelFlow: "the CronJob's and its job template's labels → its pod template", Controller: "the CronJob controller, then the Job controller",
		typed: func() runtime.Object { return &batchv1.CronJob{} }},
	{GVK: schema.GroupVersionKind{Group: "kubeflow.org", Version: "v1", Kind: "PyTorchJob"}, Resource: "pytorchjobs", Operations: create,
		Templates: []TemplatePath{{Path: []string{"spec", "pytorchReplicaSpecs", AnyMember, "template"}, Name: "replica type %s"}},
		Inherit:   objectLabels,
		LabelFlow: "the PyTorchJob's labels → every replica type's template (Master, Worker)", Controller: "the Kubeflow training operator"},
	{GVK: schema.GroupVersionKind{Group: "ray.io", Version: "v1", Kind: "RayJob"}, Resource: "rayjobs", Operations: create,
		Templates: []TemplatePath{
			{Path: []string{"spec", "rayClusterSpec", "headGroupSpec", "template"}, Name: "head group"},
			{Path: []string{"spec", "rayClusterSpec", "workerGroupSpecs", AnyItem, "template"}, Name: "worker group %s", ItemName: "groupName"},
			// The submitter runs ray job submit: it gets what its own template asks for.
			{Path: []string{"spec", "submitterPodTemplate"}, Name: "submitter", Own: true},
		},
		Inherit:   objectLabels,
		LabelFlow: "the RayJob's labels → its head and worker group templates → the RayCluster it creates → its pods (the submitter's template: its own labels)", Controller: "KubeRay (a RayCluster, then its pods; a submitter Job)"},
	{GVK: schema.GroupVersionKind{Group: "ray.io", Version: "v1", Kind: "RayCluster"}, Resource: "rayclusters", Operations: create, OwnedByWorkloads: true,
		Templates: []TemplatePath{
			{Path: []string{"spec", "headGroupSpec", "template"}, Name: "head group"},
			{Path: []string{"spec", "workerGroupSpecs", AnyItem, "template"}, Name: "worker group %s", ItemName: "groupName"},
		},
		Inherit:   objectLabels,
		LabelFlow: "the RayCluster's labels → its head and worker group templates", Controller: "KubeRay"},
	// The apps/v1 workloads: read by credgate eval, not admitted by credgate serve.
	{GVK: appsv1.SchemeGroupVersion.WithKind("Deployment"), Resource: "deployments",
		Templates: []TemplatePath{{Path: []string{"spec", "template"}}}, LabelFlow: "its pod template's labels", Controller: "the Deployment controller",
		typed: func() runtime.Object { return &appsv1.Deployment{} }},
	{GVK: appsv1.SchemeGroupVersion.WithKind("StatefulSet"), Resource: "statefulsets",
		Templates: []TemplatePath{{Path: []string{"spec", "template"}}}, LabelFlow: "its pod template's labels", Controller: "the StatefulSet controller",
		typed: func() runtime.Object { return &appsv1.StatefulSet{} }},
	{GVK: appsv1.SchemeGroupVersion.WithKind("DaemonSet"), Resource: "daemonsets",
		Templates: []TemplatePath{{Path: []string{"spec", "template"}}}, LabelFlow: "its pod template's labels", Controller: "the DaemonSet controller",
		typed: func() runtime.Object { return &appsv1.DaemonSet{} }},
	{GVK: appsv1.SchemeGroupVersion.WithKind("ReplicaSet"), Resource: "replicasets", OwnedByWorkloads: true,
		Templates: []TemplatePath{{Path: []string{"spec", "template"}}}, LabelFlow: "its pod template's labels", Controller: "the ReplicaSet controller",
		typed: func() runtime.Object { return &appsv1.ReplicaSet{} }},
}

// Admitted reports whether credgate serve admits the kind.
func (k *Kind) Admitted() bool { return len(k.Operations) > 0 }

// IsPod reports whether the kind is Pod.
func (k *Kind) IsPod() bool { return len(k.Templates) == 0 }

// Custom reports whether the kind is a custom resource, decoded without Go types.
func (k *Kind) Custom() bool { return k.typed == nil }

// New returns an empty object of the kind to decode into: its Go type, or an Unstructured of
// its apiVersion and kind.
func (k *Kind) New() runtime.Object {
	if k.typed != nil {
		return k.typed()
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(k.GVK)
	return u
}

// KindOf returns the Kind of gvk, nil when credgate knows none.
func KindOf(gvk schema.GroupVersionKind) *Kind {
	for i := range Kinds {
		if Kinds[i].GVK == gvk {
			return &Kinds[i]
		}
	}
	return nil
}

// kindByGroupKind returns the Kind of gk, whatever its version; nil when credgate knows none.
func kindByGroupKind(gk schema.GroupKind) *Kind {
	for i := range Kinds {
		if Kinds[i].GVK.GroupKind() == gk {
			return &Kinds[i]
		}
	}
	return nil
}

// OwnerAbove returns the GroupVersionKind of a controller owner reference's kind
// (apiVersion, kind) whose own controller the audit record names — a Job's CronJob, a
// RayCluster's RayJob — and false for any other.
func OwnerAbove(apiVersion, kind string) (schema.GroupVersionKind, bool) {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return schema.GroupVersionKind{}, false
	}
	k := kindByGroupKind(schema.GroupKind{Group: gv.Group, Kind: kind})
	if k == nil || !k.OwnedByWorkloads {
		return schema.GroupVersionKind{}, false
	}
	return k.GVK, true
}
