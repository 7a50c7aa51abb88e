package mutate

import (
	"fmt"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
)

// injectedPathSuffix ends the JSON pointer of the credgate.dev/injected annotation, at
// whatever depth the pod template sits.
const injectedPathSuffix = "/annotations/credgate.dev~1injected"

// Patch returns the JSON patch that turns the submitted object into the mutated one. It is the
// diff of the two documents, minus what the round trip through Go types introduced rather
// than mutate: Apply only ever adds (variables, volumes, mounts, pull secrets, labels, the
// annotation) and rewrites the injected annotation, so
//
//   - a "remove" is a field the submitted object has and credgate's API types do not know
//     (a newer Kubernetes field): dropping the op keeps the field;
//   - a "replace" of anything but the annotation is a value re-encoded differently (a
//     quantity "1000m" re-encoded as "1"): dropping it keeps the user's spelling;
//   - null members and empty objects inside an "add" ("resources": {}, "status": {},
//     "creationTimestamp": null) are encoding artefacts, pruned; an add left empty is dropped.
//
// What remains is exactly credgate's change, so a patch never touches a field credgate did
// not mean to touch, whatever version of Kubernetes sent the object.
func Patch(original, mutated []byte) ([]jsonpatch.Operation, error) {
	ops, err := jsonpatch.CreatePatch(original, mutated)
	if err != nil {
		return nil, fmt.Errorf("diff submitted and mutated object: %w", err)
	}
	kept := ops[:0]
	for _, op := range ops {
		switch op.Operation {
		case "add":
			v, empty := prune(op.Value)
			if empty {
				continue
			}
			op.Value = v
		case "replace":
			if !strings.HasSuffix(op.Path, injectedPathSuffix) {
				continue
			}
		default:
			continue
		}
		kept = append(kept, op)
	}
	return kept, nil
}

// prune removes null members and empty objects from v, recursively, and reports whether
// nothing is left.
func prune(v any) (any, bool) {
	switch t := v.(type) {
	case nil:
		return nil, true
	case map[string]any:
		for k, mv := range t {
			pv, empty := prune(mv)
			if empty {
				delete(t, k)
				continue
			}
			t[k] = pv
		}
		return t, len(t) == 0
	case []any:
		for i, e := range t {
			t[i], _ = prune(e)
		}
	}
	return v, false
}
