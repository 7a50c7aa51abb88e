package mutate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"

	"github.com/credgate/credgate/workload"
)

// Recorded is what a pod template held, before credgate added to it, of the lists and maps it
// adds to: Record takes it, Patch compares the template with it afterwards.
type Recorded struct {
	labels      map[string]string
	annotations int
	// ours are the template's credgate.dev/ annotations, by key.
	ours        map[string]string
	volumes     int
	pullSecrets int
	// Per init container, then per container: how many variables and mounts it had.
	initContainers, containers []lengths
}

type lengths struct{ env, mounts int }

// Record records t before credgate adds to it. labels are the template's labels before
// workload.InheritLabels copied any into it (t's own for a Pod, which inherits none); Record
// keeps the map, which must not change afterwards (only t's may).
func Record(t workload.Template, labels map[string]string) Recorded {
	r := Recorded{
		labels:      labels,
		annotations: len(t.Meta.Annotations),
		volumes:     len(t.Spec.Volumes),
		pullSecrets: len(t.Spec.ImagePullSecrets),
	}
	for k, v := range t.Meta.Annotations {
		if strings.HasPrefix(k, credgateAnnotationPrefix) {
			if r.ours == nil {
				r.ours = map[string]string{}
			}
			r.ours[k] = v
		}
	}
	r.initContainers = recordContainers(t.Spec.InitContainers)
	r.containers = recordContainers(t.Spec.Containers)
	return r
}

func recordContainers(cs []corev1.Container) []lengths {
	out := make([]lengths, len(cs))
	for i := range cs {
		out[i] = lengths{len(cs[i].Env), len(cs[i].VolumeMounts)}
	}
	return out
}

// Patch returns the JSON patch that turns the submitted object, raw, into the object whose pod
// template t now is, given r, what t held before credgate added to it (Record). credgate only
// ever adds — labels a workload's template inherits (workload.InheritLabels); variables,
// mounts, volumes, pull secrets and its annotations (Apply) — so the patch is read off
// the lists that grew and the map members that are new, in Go, without encoding or diffing the
// documents:
//
//   - an element appended to a list that had some gives an "add" at its index; a list that
//     had none (absent, null or empty in raw) is added whole;
//   - a map member that is new gives an "add" of the member, or of the whole map when the map
//     had no member; a template whose metadata is absent from raw gets its metadata whole;
//   - one of credgate's annotations (credgate.dev/…), when it held another value, gives a
//     "replace".
//
// Every value is one of credgate's own, encoded with the API types, so the patch touches no
// field credgate did not mean to touch — a field of a newer Kubernetes, a quantity's spelling —
// whatever version sent the object. The operations are in path order (array indices
// numerically), so the same objects always give the same patch. TestPatchEqualsApply and
// FuzzPatch hold the patch applied to raw equal to the template Apply produced.
func Patch(raw []byte, t workload.Template, r Recorded) ([]jsonpatch.Operation, error) {
	spec := t.Spec
	if len(spec.InitContainers) != len(r.initContainers) || len(spec.Containers) != len(r.containers) ||
		len(spec.Volumes) < r.volumes || len(spec.ImagePullSecrets) < r.pullSecrets {
		return nil, fmt.Errorf("the pod template changed other than by additions since it was recorded")
	}
	prefix := ""
	for _, p := range t.Path {
		prefix += "/" + escapePointer(p)
	}
	var ops []jsonpatch.Operation

	// Metadata: "annotations" sorts before "labels".
	newLabels := len(t.Meta.Labels) - len(r.labels)
	var changed []string // credgate's annotations that are new or changed
	for k, v := range t.Meta.Annotations {
		if was, ok := r.ours[k]; strings.HasPrefix(k, credgateAnnotationPrefix) && (!ok || was != v) {
			changed = append(changed, k)
		}
	}
	slices.Sort(changed)
	newAnnotation := len(changed) > 0
	if newLabels > 0 || newAnnotation {
		meta := prefix + "/metadata"
		if len(r.labels) == 0 && r.annotations == 0 {
			present, err := memberPresent(raw, t.Path, "metadata")
			if err != nil {
				return nil, err
			}
			if !present {
				m := map[string]any{}
				if newLabels > 0 {
					m["labels"] = t.Meta.Labels
				}
				if newAnnotation {
					m["annotations"] = t.Meta.Annotations
				}
				return appendSpecOps(append(ops, jsonpatch.NewOperation("add", meta, m)), prefix, t, r), nil
			}
		}
		if newAnnotation {
			if r.annotations == 0 {
				ops = append(ops, jsonpatch.NewOperation("add", meta+"/annotations", t.Meta.Annotations))
			} else {
				for _, k := range changed {
					op := "add"
					if _, had := r.ours[k]; had {
						op = "replace"
					}
					ops = append(ops, jsonpatch.NewOperation(op, meta+"/annotations/"+escapePointer(k), t.Meta.Annotations[k]))
				}
			}
		}
		if newLabels > 0 {
			if len(r.labels) == 0 {
				ops = append(ops, jsonpatch.NewOperation("add", meta+"/labels", t.Meta.Labels))
			} else {
				for _, k := range slices.Sorted(maps.Keys(t.Meta.Labels)) {
					if _, ok := r.labels[k]; !ok {
						ops = append(ops, jsonpatch.NewOperation("add", meta+"/labels/"+escapePointer(k), t.Meta.Labels[k]))
					}
				}
			}
		}
	}
	return appendSpecOps(ops, prefix, t, r), nil
}

// credgateAnnotationPrefix starts the annotations credgate writes (credgate.dev/injected, and
// the configurations projected volumes read): those Patch adds or replaces.
const credgateAnnotationPrefix = "credgate.dev/"

// appendSpecOps appends the additions to t's spec, in path order: containers, imagePullSecrets,
// initContainers, volumes.
func appendSpecOps(ops []jsonpatch.Operation, prefix string, t workload.Template, r Recorded) []jsonpatch.Operation {
	spec := prefix + "/spec"
	ops = appendContainers(ops, spec+"/containers", t.Spec.Containers, r.containers)
	ops = appendList(ops, spec+"/imagePullSecrets", t.Spec.ImagePullSecrets, r.pullSecrets)
	ops = appendContainers(ops, spec+"/initContainers", t.Spec.InitContainers, r.initContainers)
	return appendList(ops, spec+"/volumes", t.Spec.Volumes, r.volumes)
}

func appendContainers(ops []jsonpatch.Operation, path string, cs []corev1.Container, was []lengths) []jsonpatch.Operation {
	for i := range cs {
		if len(cs[i].Env) == was[i].env && len(cs[i].VolumeMounts) == was[i].mounts {
			continue
		}
		p := path + "/" + strconv.Itoa(i)
		ops = appendList(ops, p+"/env", cs[i].Env, was[i].env)
		ops = appendList(ops, p+"/volumeMounts", cs[i].VolumeMounts, was[i].mounts)
	}
	return ops
}

// appendList appends the adds of list's elements from index had on: the whole list when it
// had none (the member may be absent, null or empty), else one add per element.
func appendList[E any](ops []jsonpatch.Operation, path string, list []E, had int) []jsonpatch.Operation {
	switch {
	case len(list) <= had:
		return ops
	case had == 0:
		return append(ops, jsonpatch.NewOperation("add", path, list))
	}
	// The elements' paths are slices of one string: one allocation, not one each.
	var b strings.Builder
	b.Grow((len(path) + 4) * (len(list) - had))
	for i := had; i < len(list); i++ {
		b.WriteString(path)
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(i))
	}
	paths := b.String()
	for i := had; i < len(list); i++ {
		n := len(path) + 1 + len(strconv.Itoa(i))
		// A pointer to the element, which encodes as the element does, is no copy of it.
		ops = append(ops, jsonpatch.NewOperation("add", paths[:n], &list[i]))
		paths = paths[n:]
	}
	return ops
}

// memberPresent reports whether the object at path in the JSON document raw has the member
// name. Only a template with neither labels nor annotations asks (an API server always sends a
// pod template's metadata, a client may not), so the cost of a parse is rare.
func memberPresent(raw []byte, path []string, name string) (bool, error) {
	var v json.RawMessage = raw
	for _, p := range append(slices.Clone(path), name) {
		trimmed := bytes.TrimLeft(v, " \t\r\n")
		if len(trimmed) > 0 && trimmed[0] == '[' {
			// A list item, by its index (a RayCluster's workerGroupSpecs).
			var items []json.RawMessage
			if err := json.Unmarshal(v, &items); err != nil {
				return false, fmt.Errorf("parse submitted object: %w", err)
			}
			i, err := strconv.Atoi(p)
			if err != nil || i < 0 || i >= len(items) {
				return false, nil
			}
			v = items[i]
			continue
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(v, &obj); err != nil {
			return false, fmt.Errorf("parse submitted object: %w", err)
		}
		var ok bool
		if v, ok = obj[p]; !ok {
			return false, nil
		}
	}
	return string(bytes.TrimSpace(v)) != "null", nil
}
