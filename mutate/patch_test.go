package mutate_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/google/go-cmp/cmp"
	gomodjsonpatch "gomodules.xyz/jsonpatch/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/credgate/credgate/credential"
	"github.com/credgate/credgate/mutate"
	"github.com/credgate/credgate/workload"
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
	ops, _ := patchFor(t, &corev1.Pod{}, []byte(submitted))
	patched := applyOps(t, []byte(submitted), ops)

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

// TestPatchEqualsApply is the patch's contract: for every pod under testdata/pods, and for
// the same pods with the lists credgate appends to sent as explicit nulls, the submitted
// document with the patch applied decodes to exactly the pod Apply produced, and every
// operation is an "add", or a "replace" of a null or of the injected annotation.
func TestPatchEqualsApply(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "pods"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		y, err := os.ReadFile(filepath.Join("testdata", "pods", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := yaml.YAMLToJSON(y)
		if err != nil {
			t.Fatal(err)
		}
		for variant, body := range map[string][]byte{"as written": doc, "nulls": withNulls(t, doc)} {
			t.Run(e.Name()+"/"+variant, func(t *testing.T) {
				ops, want := patchFor(t, &corev1.Pod{}, body)
				var submitted any
				mustUnmarshal(t, body, &submitted)
				for _, op := range ops {
					if op.Operation != "add" && (op.Operation != "replace" ||
						!strings.Contains(op.Path, "/annotations/credgate.dev~1") && !isNull(submitted, op.Path)) {
						t.Errorf("patch has %s %s, want only adds and replaces of nulls", op.Operation, op.Path)
					}
				}
				got := &corev1.Pod{}
				mustUnmarshal(t, applyOps(t, body, ops), got)
				if !equality.Semantic.DeepEqual(want, got) {
					t.Errorf("patched document differs from Apply's pod (-apply +patched):\n%s", cmp.Diff(want, got))
				}
			})
		}
	}
}

// TestPatchEmptyWhenNothingChanged: a pod credgate already injected (the webhook is
// re-invoked; the Job controller's pods arrive with the template's injection) gets no patch.
func TestPatchEmptyWhenNothingChanged(t *testing.T) {
	ops, pod := patchFor(t, &corev1.Pod{}, []byte(submitted))
	again, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	if ops, _ := patchFor(t, &corev1.Pod{}, again); len(ops) != 0 {
		t.Errorf("second patch = %v, want none", ops)
	}
	if len(ops) == 0 {
		t.Error("first patch is empty")
	}
}

// TestPatchJobWithoutTemplateMetadata: a Job's pod template need not have metadata; the
// labels copied from the Job — all the template gets — arrive in one add of the whole member,
// without the re-encoding's "creationTimestamp": null.
func TestPatchJobWithoutTemplateMetadata(t *testing.T) {
	doc := []byte(`{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j","labels":{"credentials.credgate.dev/hf":"true","team":"a"}},
		"spec":{"template":{"spec":{"restartPolicy":"Never","containers":[{"name":"c","image":"i"}]}}}}`)
	ops, job := patchFor(t, &batchv1.Job{}, doc)
	if len(ops) == 0 || ops[0].Path != "/spec/template/metadata" {
		t.Fatalf("ops = %v, want the template's metadata added first", ops)
	}
	if meta := ops[0].Value.(map[string]any); len(meta) != 1 || meta["labels"] == nil {
		t.Errorf("template metadata added = %v, want labels only", meta)
	}
	if len(ops) != 1 {
		t.Errorf("ops = %v, want the template's labels alone", ops)
	}
	got := &batchv1.Job{}
	mustUnmarshal(t, applyOps(t, doc, ops), got)
	if !equality.Semantic.DeepEqual(job, got) {
		t.Errorf("patched Job differs (-apply +patched):\n%s", cmp.Diff(job, got))
	}
	if _, ok := got.Spec.Template.Labels["team"]; ok {
		t.Error("a label that requests no credential was copied into the template")
	}
}

// TestPatchEscapesKeys: label and annotation keys hold "/", which a JSON pointer escapes.
func TestPatchEscapesKeys(t *testing.T) {
	job := []byte(`{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j","labels":{"credentials.credgate.dev/hf":"true"}},
		"spec":{"template":{"metadata":{"labels":{"app":"x"},"annotations":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}`)
	pod := []byte(`{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","labels":{"credentials.credgate.dev/hf":"true"},"annotations":{"a":"b"}},
		"spec":{"containers":[{"name":"c","image":"i"}]}}`)
	var paths []string
	jobOps, _ := patchFor(t, &batchv1.Job{}, job)
	podOps, _ := patchFor(t, &corev1.Pod{}, pod)
	for _, op := range append(jobOps, podOps...) {
		if strings.Contains(op.Path, "credgate.dev") {
			paths = append(paths, op.Path)
		}
	}
	want := []string{
		"/spec/template/metadata/labels/credentials.credgate.dev~1hf",
		"/metadata/annotations/credgate.dev~1injected",
	}
	if diff := cmp.Diff(want, paths); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
}

// patchFor decodes doc into obj, reviews it with the test credentials and returns the patch
// (mutate.Patch) and the mutated object. It also holds the patch to the reference diff
// (referenceDiff): applied to doc, both give the same document.
func patchFor[T runtime.Object](t *testing.T, obj T, doc []byte) ([]gomodjsonpatch.Operation, T) {
	t.Helper()
	mustUnmarshal(t, doc, obj)
	tmpl, rec, _ := reviewRecorded(t, obj, loadCredentials(t))
	ops, err := mutate.Patch(doc, tmpl, rec)
	if err != nil {
		t.Fatal(err)
	}
	mutated, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := referenceDiff(doc, mutated)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := applyOps(t, doc, ops), applyOps(t, doc, ref); !jsonEqual(t, got, want) {
		t.Errorf("the patch and the reference diff give different documents:\npatch:     %s\nreference: %s", got, want)
	}
	return ops, obj
}

// jsonEqual reports whether two JSON documents hold the same value.
func jsonEqual(t testing.TB, a, b []byte) bool {
	var av, bv any
	if err := json.Unmarshal(a, &av); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &bv); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(av, bv)
}

// isNull reports whether the JSON pointer p names an explicit null in doc.
func isNull(doc any, p string) bool {
	v, found := lookup(doc, p)
	return found && v == nil
}

// TestPatchRejectsChangedTemplate: a template that lost a container since it was recorded is
// an internal error, not a patch.
func TestPatchRejectsChangedTemplate(t *testing.T) {
	pod := &corev1.Pod{}
	mustUnmarshal(t, []byte(submitted), pod)
	tmpl, rec, _ := reviewRecorded(t, pod, loadCredentials(t))
	tmpl.Spec.Containers = nil
	if _, err := mutate.Patch([]byte(submitted), tmpl, rec); err == nil {
		t.Error("Patch accepted a template that lost its containers")
	}
}

// TestPatchOrdered: the same change always gives the same patch, appends in index order.
func TestPatchOrdered(t *testing.T) {
	first, _ := patchFor(t, &corev1.Pod{}, []byte(submitted))
	for range 20 {
		again, _ := patchFor(t, &corev1.Pod{}, []byte(submitted))
		if diff := cmp.Diff(first, again); diff != "" {
			t.Fatalf("patches differ (-first +again):\n%s", diff)
		}
	}
}

// withNulls returns doc with every list and map credgate adds to that doc lacks set to an
// explicit null, as some clients send them.
func withNulls(t testing.TB, doc []byte) []byte {
	t.Helper()
	var pod map[string]any
	mustUnmarshal(t, doc, &pod)
	setNull := func(m map[string]any, keys ...string) {
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				m[k] = nil
			}
		}
	}
	setNull(pod["metadata"].(map[string]any), "annotations")
	spec := pod["spec"].(map[string]any)
	setNull(spec, "volumes", "imagePullSecrets")
	for _, list := range []string{"initContainers", "containers"} {
		cs, _ := spec[list].([]any)
		for _, c := range cs {
			setNull(c.(map[string]any), "env", "volumeMounts")
		}
	}
	out, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func applyOps(t testing.TB, doc []byte, ops any) []byte {
	t.Helper()
	raw, err := json.Marshal(ops)
	if err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Apply(doc)
	if err != nil {
		t.Fatalf("apply patch %s: %v", raw, err)
	}
	return out
}

func mustUnmarshal(t testing.TB, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

// FuzzPatch holds mutate.Patch to its contract on any pod: the submitted document with the
// patch applied decodes to exactly the pod Apply produced, and to the pod the reference diff
// gives; it only adds, and replaces the injected annotation. Seeds: every pod under testdata/pods, as written and with explicit nulls.
func FuzzPatch(f *testing.F) {
	entries, err := os.ReadDir(filepath.Join("testdata", "pods"))
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		y, err := os.ReadFile(filepath.Join("testdata", "pods", e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		doc, err := yaml.YAMLToJSON(y)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(doc)
		f.Add(withNulls(f, doc))
	}
	f.Add([]byte(submitted))
	creds := map[string]credential.Resolved{}
	for name, c := range loadCredentialsTB(f) {
		r, err := credential.Resolve(c)
		if err != nil {
			f.Fatal(err)
		}
		creds[name] = r
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		pod := &corev1.Pod{}
		if kjson.UnmarshalCaseSensitivePreserveInts(doc, pod) != nil { // as the API server decodes (the webhook refuses more: webhook.TestDecodeJSON)
			return
		}
		tmpl, err := workload.PodTemplate(pod)
		if err != nil {
			return
		}
		names, _ := workload.Requested(tmpl.Meta.Labels)
		var resolved []credential.Resolved
		for _, n := range names {
			if r, ok := creds[n]; ok {
				resolved = append(resolved, r)
			}
		}
		targets, problem := workload.TargetContainers(tmpl)
		if problem != "" || len(resolved) == 0 {
			return
		}
		rec := mutate.Record(tmpl, tmpl.Meta.Labels)
		mutate.Apply(tmpl, resolved, targets)
		ops, err := mutate.Patch(doc, tmpl, rec)
		if err != nil {
			t.Fatal(err)
		}
		mutated, err := json.Marshal(pod)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := referenceDiff(doc, mutated)
		if err != nil {
			return // not a document the reference reads
		}
		want, err := mutate.ApplyPatch(doc, ref)
		if err != nil {
			return // the reference cannot patch it either (a null where a list's element should be)
		}
		got, err := mutate.ApplyPatch(doc, ops)
		if err != nil {
			t.Fatalf("the patch does not apply where the reference's does: %v\npatch: %+v", err, ops)
		}
		encoded, err := mutate.EncodePatch(ops)
		if err != nil {
			t.Fatal(err)
		}
		if marshalled, err := json.Marshal(ops); err != nil || !bytes.Equal(encoded, marshalled) {
			t.Errorf("EncodePatch gives\n%s\njson.Marshal gives (error %v)\n%s", encoded, err, marshalled)
		}
		for _, op := range ops {
			if op.Operation != "add" && (op.Operation != "replace" || !strings.Contains(op.Path, "/annotations/credgate.dev~1")) {
				t.Errorf("patch has %s %s, want only adds and replaces of credgate's annotations", op.Operation, op.Path)
			}
		}
		// The reference re-encodes what it adds to (a container without a name gets "name":
		// ""), so the documents are compared as the API server decodes them.
		patched, reference := &corev1.Pod{}, &corev1.Pod{}
		if err := kjson.UnmarshalCaseSensitivePreserveInts(got, patched); err != nil {
			t.Fatal(err)
		}
		if err := kjson.UnmarshalCaseSensitivePreserveInts(want, reference); err != nil {
			t.Fatal(err)
		}
		if !equality.Semantic.DeepEqual(reference, patched) {
			t.Errorf("the patch and the reference diff give different pods (-reference +patch):\n%s", cmp.Diff(reference, patched))
		}
		if !equality.Semantic.DeepEqual(pod, patched) {
			t.Errorf("patched document differs from Apply's pod (-apply +patched):\n%s", cmp.Diff(pod, patched))
		}
	})
}
