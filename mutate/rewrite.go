package mutate

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"

	jsonpatchapply "github.com/evanphx/json-patch/v5"
	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
)

// Rewrite returns the JSON patch that turns the pod template before into after, where the
// template sits at path in the object (workload.Template.Path; empty for a Pod). It is the
// patch of what credgate takes away or changes — Strip, and credential labels following a
// workload's (workload.FollowLabels) — where Patch is the patch of what it adds.
//
// Both are encoded with credgate's API types, so they differ only where credgate changed
// something. A list that lost elements gives one "remove" per element lost, the highest index
// first, rather than a rewrite of every element after it (as jsonpatch.CreatePatch would): so
// the patch applies to the submitted object and keeps every element credgate did not remove
// exactly as submitted, with any field credgate's types do not know. A map member gone gives a
// "remove", a value changed a "replace". The operations apply in order.
func Rewrite(path []string, before, after *corev1.PodTemplateSpec) ([]jsonpatch.Operation, error) {
	a, err := decodeTemplate(before)
	if err != nil {
		return nil, err
	}
	b, err := decodeTemplate(after)
	if err != nil {
		return nil, err
	}
	prefix := ""
	for _, p := range path {
		prefix += "/" + escapePointer(p)
	}
	return rewrite(a, b, prefix, nil), nil
}

func decodeTemplate(t *corev1.PodTemplateSpec) (any, error) {
	raw, err := json.Marshal(t)
	if err != nil {
		return nil, fmt.Errorf("encode pod template: %w", err)
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("decode pod template: %w", err)
	}
	return v, nil
}

var pointerEscaper = strings.NewReplacer("~", "~0", "/", "~1")

func escapePointer(s string) string { return pointerEscaper.Replace(s) }

// rewrite appends to ops the operations that turn a into b at path p.
func rewrite(a, b any, p string, ops []jsonpatch.Operation) []jsonpatch.Operation {
	switch at := a.(type) {
	case map[string]any:
		bt, ok := b.(map[string]any)
		if !ok {
			break
		}
		for _, k := range slices.Sorted(maps.Keys(at)) {
			kp := p + "/" + escapePointer(k)
			if bv, ok := bt[k]; ok {
				ops = rewrite(at[k], bv, kp, ops)
			} else {
				ops = append(ops, jsonpatch.NewOperation("remove", kp, nil))
			}
		}
		for _, k := range slices.Sorted(maps.Keys(bt)) {
			if _, ok := at[k]; !ok {
				ops = append(ops, jsonpatch.NewOperation("add", p+"/"+escapePointer(k), bt[k]))
			}
		}
		return ops
	case []any:
		bt, ok := b.([]any)
		if !ok {
			break
		}
		if kept, ok := subsequence(at, bt); ok && len(bt) < len(at) {
			for i := len(at) - 1; i >= 0; i-- {
				if !kept[i] {
					ops = append(ops, jsonpatch.NewOperation("remove", p+"/"+strconv.Itoa(i), nil))
				}
			}
			return ops
		}
		// Not a removal of elements: trailing elements removed or added, the others compared
		// in place, as jsonpatch.CreatePatch does.
		n := min(len(at), len(bt))
		for i := len(at) - 1; i >= n; i-- {
			ops = append(ops, jsonpatch.NewOperation("remove", p+"/"+strconv.Itoa(i), nil))
		}
		for i := range n {
			ops = rewrite(at[i], bt[i], p+"/"+strconv.Itoa(i), ops)
		}
		for i := n; i < len(bt); i++ {
			ops = append(ops, jsonpatch.NewOperation("add", p+"/"+strconv.Itoa(i), bt[i]))
		}
		return ops
	}
	if reflect.DeepEqual(a, b) {
		return ops
	}
	return append(ops, jsonpatch.NewOperation("replace", p, b))
}

// subsequence reports whether b is a's elements with some left out, and which of a's it kept
// (the earliest that match).
func subsequence(a, b []any) (kept []bool, ok bool) {
	kept = make([]bool, len(a))
	j := 0
	for i := range a {
		if j < len(b) && reflect.DeepEqual(a[i], b[j]) {
			kept[i] = true
			j++
		}
	}
	return kept, j == len(b)
}

// ApplyPatch applies ops to the JSON document doc, as the API server applies a webhook's
// patch, and returns the result.
func ApplyPatch(doc []byte, ops []jsonpatch.Operation) ([]byte, error) {
	if len(ops) == 0 {
		return doc, nil
	}
	raw, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("encode patch: %w", err)
	}
	p, err := jsonpatchapply.DecodePatch(raw)
	if err != nil {
		return nil, fmt.Errorf("decode patch: %w", err)
	}
	out, err := p.Apply(doc)
	if err != nil {
		return nil, fmt.Errorf("apply patch: %w", err)
	}
	return out, nil
}
