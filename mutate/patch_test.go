package mutate_test

import (
	"encoding/json"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"

	"github.com/credgate/credgate/mutate"
)

// submitted is a pod as a newer API server might send it: a native sidecar, pod-level
// resources, a quantity spelled "1000m", and fields no version of k8s.io/api knows.
const submitted = `{
  "apiVersion": "v1", "kind": "Pod",
  "metadata": {"name": "train", "labels": {"credentials.credgate.dev/hf": "true"},
               "annotations": {"credgate.dev/injected": "stale sha256:0000000000000000"}},
  "spec": {
    "someFutureField": {"a": 1},
    "resources": {"limits": {"cpu": "8"}},
    "initContainers": [{"name": "shipper", "image": "s:1", "restartPolicy": "Always"}],
    "containers": [{"name": "trainer", "image": "t:1", "futureContainerField": "x",
                    "resources": {"limits": {"cpu": "1000m"}}}]
  }
}`

func TestPatchKeepsWhatMutateDidNotTouch(t *testing.T) {
	pod := &corev1.Pod{}
	if err := json.Unmarshal([]byte(submitted), pod); err != nil {
		t.Fatal(err)
	}
	apply(t, pod, loadCredentials(t))
	mutated, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	ops, err := mutate.Patch([]byte(submitted), mutated)
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		if op.Operation == "remove" || op.Operation == "replace" && op.Path != "/metadata/annotations/credgate.dev~1injected" {
			t.Errorf("patch has %s %s; mutate never removes or rewrites", op.Operation, op.Path)
		}
	}
	patched := applyOps(t, submitted, ops)

	var got, orig map[string]any
	mustUnmarshal(t, patched, &got)
	mustUnmarshal(t, []byte(submitted), &orig)
	spec, origSpec := got["spec"].(map[string]any), orig["spec"].(map[string]any)
	for _, field := range []string{"someFutureField", "resources"} {
		if diff := cmp.Diff(origSpec[field], spec[field]); diff != "" {
			t.Errorf("spec.%s changed (-submitted +patched):\n%s", field, diff)
		}
	}
	ctr := spec["containers"].([]any)[0].(map[string]any)
	if ctr["futureContainerField"] != "x" {
		t.Errorf("containers[0].futureContainerField = %v, want x", ctr["futureContainerField"])
	}
	if diff := cmp.Diff(map[string]any{"limits": map[string]any{"cpu": "1000m"}}, ctr["resources"]); diff != "" {
		t.Errorf("containers[0].resources re-encoded (-want +got):\n%s", diff)
	}
	sidecar := spec["initContainers"].([]any)[0].(map[string]any)
	if sidecar["restartPolicy"] != "Always" {
		t.Errorf("native sidecar lost restartPolicy: Always: %v", sidecar)
	}
	if _, ok := sidecar["env"]; !ok {
		t.Errorf("native sidecar got no credentials: %v", sidecar)
	}
	if _, ok := got["status"]; ok {
		t.Errorf("patch added status: %v", got["status"])
	}
	ann := got["metadata"].(map[string]any)["annotations"].(map[string]any)["credgate.dev/injected"]
	if ann == "stale sha256:0000000000000000" {
		t.Errorf("stale injected annotation was not rewritten")
	}
}

func TestPatchEmptyWhenNothingChanged(t *testing.T) {
	doc := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"i"}]}}`)
	pod := &corev1.Pod{}
	mustUnmarshal(t, doc, pod)
	roundTripped, err := json.Marshal(pod) // adds "resources":{}, "status":{}, "creationTimestamp":null
	if err != nil {
		t.Fatal(err)
	}
	ops, err := mutate.Patch(doc, roundTripped)
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != 0 {
		t.Errorf("round trip alone produced a patch: %v", ops)
	}
}

func TestPatchRejectsBadJSON(t *testing.T) {
	if _, err := mutate.Patch([]byte("{"), []byte("{}")); err == nil {
		t.Error("Patch accepted a truncated document")
	}
}

func applyOps(t *testing.T, doc string, ops any) []byte {
	t.Helper()
	raw, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply([]byte(doc))
	if err != nil {
		t.Fatalf("apply patch %s: %v", raw, err)
	}
	return out
}

func mustUnmarshal(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}
