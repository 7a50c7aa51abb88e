package mutate

import (
	"iter"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"gomodules.xyz/jsonpatch/v2"

	"github.com/credgate/credgate/workload"
)

// Shape is what a patch needs to know of a pod template as submitted, before Apply: whether it
// had metadata, labels and annotations at all, its credential labels and injected annotation,
// and how long each list credgate appends to was (-1: absent or null).
//
// The patch is written from the shape and the template after Apply, never by diffing
// documents, so it holds exactly credgate's change:
//
//   - new list elements are added at the end ("/-"); a list the object did not have, or sent
//     as null, is added whole;
//   - a map member (a copied label, the injected annotation) is added, which replaces the
//     member when it exists (RFC 6902); a map the object did not have is added whole;
//   - nothing else is touched: no field credgate's Go types do not know (a newer Kubernetes
//     field) is dropped, no value is re-encoded (a quantity "1000m" stays "1000m").
//
// Every operation is an "add".
type Shape struct {
	meta        bool
	labels      map[string]string // the credential labels; nil when the template had no labels
	annotations bool
	injected    *string
	volumes     int
	pullSecrets int
	// env and mounts of the init containers, then of the containers.
	env, mounts []int
}

// Record returns the shape of t. Call it before InheritLabels and Apply change t.
func Record(t workload.Template) *Shape {
	s := &Shape{
		meta:        !reflect.ValueOf(*t.Meta).IsZero(),
		annotations: t.Meta.Annotations != nil,
		volumes:     length(t.Spec.Volumes),
		pullSecrets: length(t.Spec.ImagePullSecrets),
	}
	if t.Meta.Labels != nil {
		s.labels = make(map[string]string)
		for k, v := range t.Meta.Labels {
			if strings.HasPrefix(k, workload.LabelPrefix) {
				s.labels[k] = v
			}
		}
	}
	if v, ok := t.Meta.Annotations[workload.InjectedAnnotation]; ok {
		s.injected = &v
	}
	n := len(t.Spec.InitContainers) + len(t.Spec.Containers)
	lens := make([]int, 2*n)
	s.env, s.mounts = lens[:n:n], lens[n:]
	for i, c := range containers(t) {
		s.env[i], s.mounts[i] = length(c.Env), length(c.VolumeMounts)
	}
	return s
}

// Patch returns the JSON patch that turns the submitted object into the one holding t, the
// template Record saw, after InheritLabels and Apply. Changes to t other than theirs are not
// in the patch.
func (s *Shape) Patch(t workload.Template) []jsonpatch.Operation {
	base := ""
	for _, p := range t.Path {
		base += "/" + escape(p)
	}
	var ops []jsonpatch.Operation
	meta := base + "/metadata"
	switch {
	case !s.meta:
		m := make(map[string]any, 2)
		if len(t.Meta.Labels) > 0 {
			m["labels"] = t.Meta.Labels
		}
		if len(t.Meta.Annotations) > 0 {
			m["annotations"] = t.Meta.Annotations
		}
		if len(m) > 0 {
			ops = append(ops, add(meta, m))
		}
	default:
		ops = s.labelOps(ops, meta+"/labels", t.Meta.Labels)
		v, ok := t.Meta.Annotations[workload.InjectedAnnotation]
		switch {
		case !s.annotations && len(t.Meta.Annotations) > 0:
			ops = append(ops, add(meta+"/annotations", t.Meta.Annotations))
		case ok && (s.injected == nil || *s.injected != v):
			ops = append(ops, add(meta+"/annotations/"+escape(workload.InjectedAnnotation), v))
		}
	}
	spec := base + "/spec"
	ops = appendOps(ops, spec+"/volumes", s.volumes, t.Spec.Volumes)
	ops = appendOps(ops, spec+"/imagePullSecrets", s.pullSecrets, t.Spec.ImagePullSecrets)
	for i, c := range containers(t) {
		if i >= len(s.env) {
			break // a container Apply does not add; cannot happen
		}
		path := spec + "/containers/" + strconv.Itoa(i-len(t.Spec.InitContainers))
		if i < len(t.Spec.InitContainers) {
			path = spec + "/initContainers/" + strconv.Itoa(i)
		}
		ops = appendOps(ops, path+"/env", s.env[i], c.Env)
		ops = appendOps(ops, path+"/volumeMounts", s.mounts[i], c.VolumeMounts)
	}
	return ops
}

// labelOps adds the credential labels t has and the submitted template did not.
func (s *Shape) labelOps(ops []jsonpatch.Operation, path string, labels map[string]string) []jsonpatch.Operation {
	if s.labels == nil {
		if len(labels) > 0 {
			ops = append(ops, add(path, labels))
		}
		return ops
	}
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if old, ok := s.labels[k]; ok && old == labels[k] || !strings.HasPrefix(k, workload.LabelPrefix) {
			continue
		}
		ops = append(ops, add(path+"/"+escape(k), labels[k]))
	}
	return ops
}

// appendOps adds the elements of list past the first n, or the whole list when the submitted
// object had none (n < 0).
func appendOps[T any](ops []jsonpatch.Operation, path string, n int, list []T) []jsonpatch.Operation {
	if n < 0 {
		if len(list) > 0 {
			ops = append(ops, add(path, list))
		}
		return ops
	}
	for i := n; i < len(list); i++ {
		ops = append(ops, add(path+"/-", list[i]))
	}
	return ops
}

func add(path string, v any) jsonpatch.Operation {
	return jsonpatch.Operation{Operation: "add", Path: path, Value: v}
}

func length[T any](list []T) int {
	if list == nil {
		return -1
	}
	return len(list)
}

// escape escapes a JSON pointer reference token (RFC 6901).
func escape(s string) string {
	if !strings.ContainsAny(s, "~/") {
		return s
	}
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

// containers yields the init containers, then the containers, numbered from 0.
func containers(t workload.Template) iter.Seq2[int, *corev1.Container] {
	return func(yield func(int, *corev1.Container) bool) {
		n := len(t.Spec.InitContainers)
		for i := range t.Spec.InitContainers {
			if !yield(i, &t.Spec.InitContainers[i]) {
				return
			}
		}
		for i := range t.Spec.Containers {
			if !yield(n+i, &t.Spec.Containers[i]) {
				return
			}
		}
	}
}
