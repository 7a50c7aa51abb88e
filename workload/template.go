package workload

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

var (
	// ErrMalformed marks an object credgate cannot admit as submitted; the webhook answers 400.
	ErrMalformed = errors.New("malformed object")
	// ErrUnsupportedKind marks an object of a kind that runs no pod credgate knows.
	ErrUnsupportedKind = errors.New("kind not admitted by credgate")
)

// Template is a pod an object will run: the Pod itself, or one of a workload's pod templates.
// Its fields point into the object, so changing them changes the object — for the built-in
// kinds; a custom kind's templates are decoded from its unstructured content, and changing
// them changes nothing there (the patch is what carries changes).
type Template struct {
	Meta *metav1.ObjectMeta
	Spec *corev1.PodSpec
	// Path is where the pod template sits in the object's JSON ("spec", "template" for a
	// Job; a map key or a list index where its Kind's path has a wildcard); empty for a Pod.
	Path []string
	// Name names the template in messages ("replica type Worker"); empty when its kind has
	// one template.
	Name string
	// own: it inherits none of the object's credential labels (TemplatePath.Own).
	own bool
}

// Where the built-in kinds' pod template sits: their Kind's TemplatePath (a test holds them
// equal).
var (
	templatePath    = []string{"spec", "template"}
	cronJobTemplate = []string{"spec", "jobTemplate", "spec", "template"}
)

// MaxTemplates bounds the pod templates of one object credgate reviews: each is decided on
// its own.
const MaxTemplates = 64

// PodTemplate returns the pod that obj runs, as submitted, for kinds that run one: a Pod or a
// workload with one pod template (for another, its first). See PodTemplates.
func PodTemplate(obj runtime.Object) (Template, error) {
	ts, err := PodTemplates(obj)
	if err != nil {
		return Template{}, err
	}
	return ts[0], nil
}

// PodTemplates returns the pods that obj runs, as submitted: the Pod itself, or each of a
// workload's pod templates, in the order of its Kind's Templates (map members sorted by key).
// It returns an error wrapping ErrMalformed for an object with no pod template, more than
// MaxTemplates, or a template with no containers, and ErrUnsupportedKind for a kind credgate
// does not know. InheritLabels then copies the object's credential labels into each template.
func PodTemplates(obj runtime.Object) ([]Template, error) {
	var ts []Template
	switch o := obj.(type) {
	case *corev1.Pod:
		ts = []Template{{Meta: &o.ObjectMeta, Spec: &o.Spec}}
	case *batchv1.Job:
		ts = []Template{{Meta: &o.Spec.Template.ObjectMeta, Spec: &o.Spec.Template.Spec, Path: templatePath}}
	case *batchv1.CronJob:
		jt := &o.Spec.JobTemplate
		ts = []Template{{Meta: &jt.Spec.Template.ObjectMeta, Spec: &jt.Spec.Template.Spec, Path: cronJobTemplate}}
	case *appsv1.Deployment:
		ts = []Template{{Meta: &o.Spec.Template.ObjectMeta, Spec: &o.Spec.Template.Spec, Path: templatePath}}
	case *appsv1.StatefulSet:
		ts = []Template{{Meta: &o.Spec.Template.ObjectMeta, Spec: &o.Spec.Template.Spec, Path: templatePath}}
	case *appsv1.DaemonSet:
		ts = []Template{{Meta: &o.Spec.Template.ObjectMeta, Spec: &o.Spec.Template.Spec, Path: templatePath}}
	case *appsv1.ReplicaSet:
		ts = []Template{{Meta: &o.Spec.Template.ObjectMeta, Spec: &o.Spec.Template.Spec, Path: templatePath}}
	case *unstructured.Unstructured:
		k := KindOf(o.GroupVersionKind())
		if k == nil || !k.Custom() {
			return nil, fmt.Errorf("%w: %s", ErrUnsupportedKind, o.GroupVersionKind())
		}
		var err error
		if ts, err = customTemplates(k, o.Object); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("%w: %T", ErrUnsupportedKind, obj)
	}
	for _, t := range ts {
		if len(t.Spec.Containers) == 0 {
			return nil, fmt.Errorf("%w: %sthe pod has no containers (spec.containers is empty)", ErrMalformed, t.prefix())
		}
	}
	return ts, nil
}

// prefix is "<name>: " for a named template, for messages.
func (t Template) prefix() string {
	if t.Name == "" {
		return ""
	}
	return t.Name + ": "
}

// customTemplates decodes the pod templates of content, an object of the custom kind k.
func customTemplates(k *Kind, content map[string]any) ([]Template, error) {
	var ts []Template
	for _, tp := range k.Templates {
		err := walk(content, tp.Path, nil, nil, func(path, names []string, v any) error {
			m, ok := v.(map[string]any)
			if !ok {
				return fmt.Errorf("%w: %s is not a pod template", ErrMalformed, shownPath(path))
			}
			if len(ts) == MaxTemplates {
				return fmt.Errorf("%w: the %s has more than %d pod templates", ErrMalformed, k.GVK.Kind, MaxTemplates)
			}
			pts := &corev1.PodTemplateSpec{}
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(m, pts); err != nil {
				return fmt.Errorf("%w: %s: %s", ErrMalformed, shownPath(path), cut(err.Error(), 256))
			}
			t := Template{Meta: &pts.ObjectMeta, Spec: &pts.Spec, Path: path, own: tp.Own}
			if tp.Name != "" {
				t.Name = tp.Name
				if strings.Contains(tp.Name, "%s") {
					t.Name = fmt.Sprintf(tp.Name, strings.Join(names, "/"))
				}
			}
			ts = append(ts, t)
			return nil
		}, tp.ItemName)
		if err != nil {
			return nil, err
		}
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("%w: the %s has no pod template", ErrMalformed, k.GVK.Kind)
	}
	return ts, nil
}

// walk calls fn with every value at pattern in v (a TemplatePath's), the concrete path to it and
// the names of the members and items its wildcards matched (a list item's itemName member, or
// its index). A member the pattern names that is absent matches nothing.
func walk(v any, pattern, path, names []string, fn func(path, names []string, v any) error, itemName string) error {
	if len(pattern) == 0 {
		return fn(slices.Clone(path), slices.Clone(names), v)
	}
	switch p := pattern[0]; p {
	case AnyMember:
		m, ok := v.(map[string]any)
		if !ok {
			if v == nil {
				return nil
			}
			return fmt.Errorf("%w: %s is not a map", ErrMalformed, shownPath(path))
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if err := walk(m[k], pattern[1:], append(path, k), append(names, shown(k)), fn, itemName); err != nil {
				return err
			}
		}
	case AnyItem:
		l, ok := v.([]any)
		if !ok {
			if v == nil {
				return nil
			}
			return fmt.Errorf("%w: %s is not a list", ErrMalformed, shownPath(path))
		}
		for i, item := range l {
			name := strconv.Itoa(i)
			if m, ok := item.(map[string]any); ok && itemName != "" {
				if n, ok := m[itemName].(string); ok && n != "" {
					name = shown(n)
				}
			}
			if err := walk(item, pattern[1:], append(path, strconv.Itoa(i)), append(names, name), fn, itemName); err != nil {
				return err
			}
		}
	default:
		m, ok := v.(map[string]any)
		if !ok {
			if v == nil {
				return nil
			}
			return fmt.Errorf("%w: %s is not an object", ErrMalformed, shownPath(append(path, p)))
		}
		child, ok := m[p]
		if !ok || child == nil {
			return nil
		}
		return walk(child, pattern[1:], append(path, p), names, fn, itemName)
	}
	return nil
}

// InheritLabels copies the credential labels of a Job, or of a CronJob and its job template,
// into t, obj's pod template, keeping any value the template has (its "false" opts out): users
// label the object they apply, and its pods get the credentials. Other kinds are left alone.
// Nothing else reaches the template: credentials are injected into each pod when it is created.
func InheritLabels(obj runtime.Object, t Template) {
	if t.own {
		return
	}
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
	ots, err := PodTemplates(old)
	if err != nil || t.own {
		return
	}
	i := slices.IndexFunc(ots, func(o Template) bool { return slices.Equal(o.Path, t.Path) })
	if i < 0 {
		return
	}
	ot := ots[i]
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

// inherited returns the credential labels obj's pod templates inherit, from the metadata its
// Kind's Inherit lists (the nearer one wins): a Job's, a CronJob's job template's and then the
// CronJob's, a custom workload's own; none for other kinds.
func inherited(obj runtime.Object) map[string]string {
	var out map[string]string
	switch o := obj.(type) {
	case *batchv1.Job:
		CopyCredentialLabels(o.Labels, &out)
	case *batchv1.CronJob:
		CopyCredentialLabels(o.Spec.JobTemplate.Labels, &out)
		CopyCredentialLabels(o.Labels, &out)
	case *unstructured.Unstructured:
		if k := KindOf(o.GroupVersionKind()); k != nil {
			for _, p := range k.Inherit {
				// A label map that is not one of strings is the API server's to refuse.
				labels, _, _ := unstructured.NestedStringMap(o.Object, append(slices.Clone(p), "labels")...)
				CopyCredentialLabels(labels, &out)
			}
		}
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

// maxShown bounds a map key or list item name, written by the tenant, in a message.
const maxShown = 63

// shown is s as a message shows it: quoted if it holds anything but printable characters, cut
// to maxShown bytes.
func shown(s string) string {
	s = cut(s, maxShown)
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}

// cut cuts s to at most n bytes, on a rune boundary, marking the cut.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// shownPath is a JSON path in a message, each member shown.
func shownPath(path []string) string {
	out := make([]string, len(path))
	for i, p := range path {
		out[i] = shown(p)
	}
	return strings.Join(out, ".")
}
