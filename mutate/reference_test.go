package mutate_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
)

// The generic diff below is the reference mutate.Patch is held to (TestPatchMatchesDiff,
// FuzzPatch): the same submitted object and the same mutation must give patches that, applied,
// give the same document.

// referenceDiff is how credgate derived its patch before mutate.Patch: it returns the JSON patch that turns the submitted object into the mutated one: the diff
// of the two documents (jsonpatch.CreatePatch, as admission.PatchResponseFromRaw computes it),
// minus what the round trip through Go types introduced rather than mutate. Apply only ever
// adds (variables, volumes, mounts, pull secrets, labels, its annotations) and rewrites its
// credgate.dev/ annotations, so
//
//   - a "remove" is a field the submitted object has and credgate's API types do not know
//     (a newer Kubernetes field): dropping the op keeps the field;
//   - a "replace" of anything but the annotation is a value re-encoded differently (a
//     quantity "1000m" re-encoded as "1"): dropping it keeps the user's spelling; except a
//     replace of an explicit null ("env": null, "volumes": null, a template's "labels": null),
//     which is credgate filling a list or map the object left empty, and is kept;
//   - null members and empty objects inside a kept value ("resources": {}, "status": {},
//     "creationTimestamp": null) are encoding artefacts, pruned; an op left empty is dropped.
//
// What remains is exactly credgate's change, so a patch never touches a field credgate did
// not mean to touch, whatever version of Kubernetes sent the object. The operations are sorted
// by path (array indices numerically), so the same objects always give the same patch.
func referenceDiff(original, mutated []byte) ([]jsonpatch.Operation, error) {
	ops, err := jsonpatch.CreatePatch(original, mutated)
	if err != nil {
		return nil, fmt.Errorf("diff submitted and mutated object: %w", err)
	}
	var doc any // the submitted object, parsed only if a replace needs a look at it
	kept := ops[:0]
	for _, op := range ops {
		switch {
		case op.Operation == "replace" && strings.Contains(op.Path, "/annotations/credgate.dev~1"):
			kept = append(kept, op)
			continue
		case op.Operation == "replace":
			if doc == nil {
				if err := json.Unmarshal(original, &doc); err != nil {
					return nil, fmt.Errorf("parse submitted object: %w", err)
				}
			}
			if v, found := lookup(doc, op.Path); !found || v != nil {
				continue
			}
		case op.Operation != "add":
			continue
		}
		v, empty := prune(op.Value)
		if empty {
			continue
		}
		op.Value = v
		kept = append(kept, op)
	}
	slices.SortFunc(kept, func(a, b jsonpatch.Operation) int { return comparePaths(a.Path, b.Path) })
	return kept, nil
}

// comparePaths orders JSON pointers token by token, array indices numerically, so that a
// parent comes before its members and "/env/9" before "/env/10".
func comparePaths(a, b string) int {
	as, bs := strings.Split(a, "/"), strings.Split(b, "/")
	for i := 0; i < len(as) && i < len(bs); i++ {
		if as[i] == bs[i] {
			continue
		}
		ai, aerr := strconv.Atoi(as[i])
		bi, berr := strconv.Atoi(bs[i])
		if aerr == nil && berr == nil {
			return ai - bi
		}
		return strings.Compare(as[i], bs[i])
	}
	return len(as) - len(bs)
}

// lookup returns the value at the JSON pointer p (RFC 6901) in doc and whether it exists.
func lookup(doc any, p string) (any, bool) {
	if p == "" {
		return doc, true
	}
	if !strings.HasPrefix(p, "/") {
		return nil, false
	}
	cur := doc
	for tok := range strings.SplitSeq(p[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
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
