package workload

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

var (
	// ErrMalformed marks an object credgate cannot admit as submitted; the webhook answers 400.
	ErrMalformed = errors.New("malformed object")
	// ErrUnsupportedKind marks an object of a kind that runs no pod credgate knows.
	ErrUnsupportedKind = errors.New("kind not admitted by credgate")
)

// Template is the pod an object will run: the Pod itself, or a workload's pod template.
// Its fields point into the object, so changing them changes the object.
type Template struct {
	Meta *metav1.ObjectMeta
	Spec *corev1.PodSpec
	// Path is where the pod template sits in the object's JSON ("spec", "template" for a
	// Job); empty for a Pod.
	Path []string
}

var (
	templatePath    = []string{"spec", "template"}
	cronJobTemplate = []string{"spec", "jobTemplate", "spec", "template"}
)

// PodTemplate returns the pod that obj runs, as submitted. It returns an error wrapping
// ErrMalformed for an object with no containers, and ErrUnsupportedKind for other kinds.
// InheritLabels then copies a Job's or CronJob's credential labels into the template.
func PodTemplate(obj runtime.Object) (Template, error) {
	var t Template
	switch o := obj.(type) {
	case *corev1.Pod:
		t = Template{Meta: &o.ObjectMeta, Spec: &o.Spec}
	case *batchv1.Job:
		t = Template{Meta: &o.Spec.Template.ObjectMeta, Spec: &o.Spec.Template.Spec, Path: templatePath}
	case *batchv1.CronJob:
		jt := &o.Spec.JobTemplate
		t = Template{Meta: &jt.Spec.Template.ObjectMeta, Spec: &jt.Spec.Template.Spec, Path: cronJobTemplate}
	case *appsv1.Deployment:
		t = Template{Meta: &o.Spec.Template.ObjectMeta, Spec: &o.Spec.Template.Spec, Path: templatePath}
	case *appsv1.StatefulSet:
		t = Template{Meta: &o.Spec.Template.ObjectMeta, Spec: &o.Spec.Template.Spec, Path: templatePath}
	case *appsv1.DaemonSet:
		t = Template{Meta: &o.Spec.Template.ObjectMeta, Spec: &o.Spec.Template.Spec, Path: templatePath}
	case *appsv1.ReplicaSet:
		t = Template{Meta: &o.Spec.Template.ObjectMeta, Spec: &o.Spec.Template.Spec, Path: templatePath}
	default:
		return Template{}, fmt.Errorf("%w: %T", ErrUnsupportedKind, obj)
	}
	if len(t.Spec.Containers) == 0 {
		return Template{}, fmt.Errorf("%w: the pod has no containers (spec.containers is empty)", ErrMalformed)
	}
	return t, nil
}

// InheritLabels copies the credential labels of a Job, or of a CronJob and its job template,
// into t, obj's pod template, keeping any value the template has (its "false" opts out): users
// label the object they apply, and its pods get the credentials. Other kinds are left alone.
// Nothing else reaches the template: credentials are injected into each pod when it is created.
func InheritLabels(obj runtime.Object, t Template) {
	CopyCredentialLabels(inherited(obj), &t.Meta.Labels)
}

// FollowLabels prepares an update of obj from old, before InheritLabels: a credential label of
// t, obj's pod template, that holds the value old's workload labels gave it (InheritLabels copied
// it, or the user wrote the same) and that this update leaves as it was in the template follows
// obj's workload labels — it takes the value they give now, or is removed when they give none. So
// setting a CronJob's label to "false", or removing it, reaches the pods of its later Jobs. A
// template label of another value, or one this update sets in the template itself, is the
// template's own and is kept.
func FollowLabels(old, obj runtime.Object, t Template) {
	ot, err := PodTemplate(old)
	if err != nil {
		return
	}
	was, now := inherited(old), inherited(obj)
	for k, v := range t.Meta.Labels {
		if !strings.HasPrefix(k, LabelPrefix) {
			continue
		}
		if ov, ok := ot.Meta.Labels[k]; !ok || ov != v {
			continue // set by this update
		}
		if wv, ok := was[k]; !ok || wv != v {
			continue // the template's own value
		}
		if nv, ok := now[k]; ok {
			t.Meta.Labels[k] = nv
		} else {
			delete(t.Meta.Labels, k)
		}
	}
}

// inherited returns the credential labels obj's pod template inherits: a Job's, or a CronJob's
// job template's and then the CronJob's (the nearer one wins); none for other kinds.
func inherited(obj runtime.Object) map[string]string {
	var out map[string]string
	switch o := obj.(type) {
	case *batchv1.Job:
		CopyCredentialLabels(o.Labels, &out)
	case *batchv1.CronJob:
		CopyCredentialLabels(o.Spec.JobTemplate.Labels, &out)
		CopyCredentialLabels(o.Labels, &out)
	}
	return out
}

// IsPod reports whether obj is a Pod, rather than a workload with a pod template.
func IsPod(obj runtime.Object) bool {
	_, ok := obj.(*corev1.Pod)
	return ok
}

// TargetContainers returns the names of the containers and init containers that get
// credentials: those the credgate.dev/containers annotation lists, or all of them. The
// problem is non-empty when the annotation names a container the pod does not have.
func TargetContainers(t Template) (names []string, problem string) {
	all := make([]string, 0, len(t.Spec.InitContainers)+len(t.Spec.Containers))
	for _, c := range t.Spec.InitContainers {
		all = append(all, c.Name)
	}
	for _, c := range t.Spec.Containers {
		all = append(all, c.Name)
	}
	v, ok := t.Meta.Annotations[ContainersAnnotation]
	if !ok {
		return all, ""
	}
	var unknown []string
	for _, n := range strings.Split(v, ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if !slices.Contains(all, n) {
			unknown = append(unknown, n)
			continue
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	switch {
	case len(unknown) > 0:
		return nil, fmt.Sprintf("annotation %s names %s, not in this pod (containers: %s)",
			ContainersAnnotation, quoteAll(unknown), strings.Join(all, ", "))
	case len(names) == 0:
		return nil, fmt.Sprintf("annotation %s names no container: list one or more of %s, or remove it",
			ContainersAnnotation, strings.Join(all, ", "))
	}
	return names, ""
}

func quoteAll(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}
