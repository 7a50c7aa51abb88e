package webhook

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/credgate/credgate/workload"
)

// decodeCases are the documents the decoders are held to: every AdmissionReview under
// testdata/ (as the review, and its object and old object as each typed kind), and every pod
// of mutate's testdata.
func decodeCases(t testing.TB) [][]byte {
	t.Helper()
	var docs [][]byte
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures under testdata/: %v", err)
	}
	for _, file := range files {
		body, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, body)
	}
	pods, err := filepath.Glob(filepath.Join("..", "mutate", "testdata", "pods", "*.yaml"))
	if err != nil || len(pods) == 0 {
		t.Fatalf("no pods under mutate/testdata/pods: %v", err)
	}
	for _, file := range pods {
		y, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		j, err := yaml.YAMLToJSON(y)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		docs = append(docs, j)
	}
	return docs
}

// TestDecodeJSON holds decodeJSON to the v1 decoder the API server's serializer uses, case
// sensitive and keeping integers, on every fixture: the same objects, field for field (nil and
// empty lists told apart: the patch depends on which).
func TestDecodeJSON(t *testing.T) {
	var reviews, objects, cleared int
	add := func(raw []byte) {
		n, c := decodeAsEveryKind(t, raw)
		objects, cleared = objects+n, cleared+c
	}
	for _, doc := range decodeCases(t) {
		var ar admissionv1.AdmissionReview
		if sameDecode(t, doc, &ar, &admissionv1.AdmissionReview{}) && ar.Request != nil {
			reviews++
			for _, raw := range [][]byte{ar.Request.Object.Raw, ar.Request.OldObject.Raw} {
				if len(raw) > 0 {
					add(raw)
				}
			}
			continue
		}
		add(doc)
	}
	if reviews < 10 || objects < 20 || cleared < 10 {
		t.Fatalf("only %d reviews and %d objects decoded, %d with members decodeObject leaves out: the fixtures are not being read",
			reviews, objects, cleared)
	}
}

// decodeAsEveryKind decodes raw as each typed kind with both decoders, and with decodeObject
// (sameObject); it returns how many decoded, and of those how many had members decodeObject
// leaves out.
func decodeAsEveryKind(t *testing.T, raw []byte) (n, cleared int) {
	for i := range workload.Kinds {
		k := &workload.Kinds[i]
		if k.Custom() {
			continue
		}
		if sameDecode(t, raw, k.New(), k.New()) {
			n++
			if len(sameObject(t, raw, k.New)) > 0 {
				cleared++
			}
		}
	}
	return n, cleared
}

// sameObject decodes doc, which decodeJSON decodes into newObj(), with decodeObject too, and
// fails the test unless the two objects are the same once the members of unread types are
// cleared from decodeJSON's (clearUnread). It returns the unread types that held a value.
func sameObject(t testing.TB, doc []byte, newObj func() runtime.Object) map[reflect.Type]bool {
	t.Helper()
	full, obj := newObj(), newObj()
	if err := decodeJSON(doc, full); err != nil {
		t.Fatalf("decodeJSON refused into %T: %v", full, err)
	}
	if err := decodeObject(doc, obj); err != nil {
		t.Fatalf("decodeObject refused into %T what decodeJSON decodes (%v):\n%s", obj, err, doc)
	}
	held := map[reflect.Type]bool{}
	clearUnread(reflect.ValueOf(full), held)
	if !reflect.DeepEqual(full, obj) {
		t.Fatalf("decodeObject is not decodeJSON without the unread members, on a %T:\n want: %#v\n got:  %#v\nfrom:\n%s", obj, full, obj, doc)
	}
	return held
}

// clearUnread sets to zero every value of a type of unread within v (a pointer), as
// decodeObject leaves them, and records in held the types of those that were not zero. Map
// values are not looked into: no unread type sits in a map of the decoded kinds.
func clearUnread(v reflect.Value, held map[reflect.Type]bool) {
	if slices.ContainsFunc(unread, func(s skipped) bool { return s.t == v.Type() }) {
		if !v.IsZero() {
			held[v.Type()] = true
			v.SetZero()
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			clearUnread(v.Elem(), held)
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if f := v.Field(i); f.CanSet() {
				clearUnread(f, held)
			}
		}
	case reflect.Slice, reflect.Array:
		for i := range v.Len() {
			clearUnread(v.Index(i), held)
		}
	}
}

// everyUnread is a pod holding a value of every type of unread, in each place a pod has one.
const everyUnread = `{"apiVersion":"v1","kind":"Pod",
 "metadata":{"name":"p","namespace":"ns","labels":{"credentials.credgate.dev/hf":"yes"},
  "managedFields":[{"manager":"kubectl","operation":"Update","apiVersion":"v1","time":"2026-01-01T00:00:00Z","fieldsType":"FieldsV1","fieldsV1":{"f:spec":{}}}]},
 "spec":{
  "resources":{"limits":{"cpu":"8"}},
  "securityContext":{"runAsUser":1000,"fsGroup":1000},
  "affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"gpu","operator":"Exists"}]}]}}},
  "tolerations":[{"key":"nvidia.com/gpu","operator":"Exists","effect":"NoSchedule"}],
  "topologySpreadConstraints":[{"maxSkew":1,"topologyKey":"zone","whenUnsatisfiable":"DoNotSchedule"}],
  "initContainers":[{"name":"init","image":"busybox","resources":{"requests":{"memory":"1Gi"}},"securityContext":{"privileged":false},
   "env":[{"name":"A","value":"1"}]}],
  "containers":[{"name":"trainer","image":"pytorch","ports":[{"containerPort":29500,"name":"dist"}],
   "resources":{"limits":{"nvidia.com/gpu":"8","memory":"64Gi"},"requests":{"cpu":"4"}},
   "resizePolicy":[{"resourceName":"cpu","restartPolicy":"NotRequired"}],
   "livenessProbe":{"exec":{"command":["true"]},"periodSeconds":10},
   "readinessProbe":{"httpGet":{"path":"/ready","port":8080}},
   "startupProbe":{"tcpSocket":{"port":"dist"}},
   "lifecycle":{"preStop":{"exec":{"command":["sleep","5"]}}},
   "securityContext":{"runAsNonRoot":true,"capabilities":{"drop":["ALL"]}},
   "env":[{"name":"WANDB_PROJECT","value":"p"}],"volumeMounts":[{"name":"data","mountPath":"/data"}]}],
  "ephemeralContainers":[{"name":"debug","image":"busybox","ports":[{"containerPort":1}],"resources":{},
   "livenessProbe":{"exec":{"command":["true"]}},"securityContext":{"privileged":true}}],
  "volumes":[{"name":"data","emptyDir":{"sizeLimit":"1Gi"}}]},
 "status":{"phase":"Pending","conditions":[{"type":"PodScheduled","status":"False","lastTransitionTime":"2026-01-01T00:00:00Z"}]}}`

// TestDecodeObject decodes a pod holding every type decodeObject leaves out: the same pod as
// decodeJSON decodes once they are cleared, and every one of them held a value (so that each
// entry of unread is exercised, and clearUnread finds them where they are).
func TestDecodeObject(t *testing.T) {
	held := sameObject(t, []byte(everyUnread), func() runtime.Object { return &corev1.Pod{} })
	for _, s := range unread {
		if !held[s.t] {
			t.Errorf("the pod holds no %v: add one to everyUnread", s.t)
		}
	}
	var pod corev1.Pod
	if err := decodeObject([]byte(everyUnread), &pod); err != nil {
		t.Fatal(err)
	}
	if len(pod.Spec.Containers) != 1 {
		t.Fatalf("decodeObject left out the containers: %+v", pod)
	}
	c := pod.Spec.Containers[0]
	if c.LivenessProbe != nil || c.SecurityContext != nil || len(c.Resources.Limits) > 0 || pod.Spec.Affinity != nil || pod.Status.Phase != "" {
		t.Errorf("decodeObject decoded what it leaves out: %+v", pod)
	}
	if c.Name != "trainer" || len(c.Env) != 1 || len(c.VolumeMounts) != 1 || len(pod.Spec.Volumes) != 1 ||
		pod.Labels["credentials.credgate.dev/hf"] != "yes" {
		t.Errorf("decodeObject left out what credgate reads: %+v", pod)
	}
}

// TestDecodeObjectRefuses shows that what decodeObject leaves out is still read as JSON: a
// repeated member name or a string that is not UTF-8 within it refuses the object, as
// decodeJSON refuses it; only its type's own checks are not made (the API server made them).
func TestDecodeObjectRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"repeated member in resources": `{"apiVersion":"v1","kind":"Pod","spec":{"containers":[{"name":"c","resources":{"limits":{"cpu":"1","cpu":"64"}}}]}}`,
		"repeated member in a probe":   `{"apiVersion":"v1","kind":"Pod","spec":{"containers":[{"name":"c","livenessProbe":{"exec":{},"exec":{}}}]}}`,
		"invalid UTF-8 in a probe":     "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"spec\":{\"containers\":[{\"name\":\"c\",\"livenessProbe\":{\"exec\":{\"command\":[\"\xff\"]}}}]}}",
		"repeated member in status":    `{"apiVersion":"v1","kind":"Pod","status":{"phase":"Running","phase":"Failed"}}`,
		"truncated in affinity":        `{"apiVersion":"v1","kind":"Pod","spec":{"affinity":{"nodeAffinity":`,
	} {
		if err := decodeObject([]byte(doc), &corev1.Pod{}); err == nil {
			t.Errorf("%s: decoded, want an error", name)
		}
		if err := decodeJSON([]byte(doc), &corev1.Pod{}); err == nil {
			t.Errorf("%s: decodeJSON decoded it, want an error", name)
		}
	}
	// A value of the wrong type where credgate reads nothing: decodeJSON refuses it, and the
	// API server, which decodes every object before any webhook sees it, would have.
	doc := []byte(`{"apiVersion":"v1","kind":"Pod","spec":{"containers":[{"name":"c","resources":{"limits":{"cpu":"not a quantity"}}}]}}`)
	if err := decodeObject(doc, &corev1.Pod{}); err != nil {
		t.Errorf("decodeObject checked a member it leaves out: %v", err)
	}
	if err := decodeJSON(doc, &corev1.Pod{}); err == nil {
		t.Error("decodeJSON decoded a quantity that is not one")
	}
}

// sameDecode decodes doc into v2 with decodeJSON and into v1 with the v1 decoder, fails the test
// when decodeJSON accepts what v1 refuses or the two differ, and reports whether both decoded.
func sameDecode(t testing.TB, doc []byte, v2, v1 any) bool {
	t.Helper()
	err2 := decodeJSON(doc, v2)
	err1 := kjson.UnmarshalCaseSensitivePreserveInts(doc, v1)
	switch {
	case err2 != nil:
		return false // stricter than v1 is allowed: TestDecodeJSONRefuses says where
	case err1 != nil:
		t.Fatalf("decodeJSON accepted into %T what the v1 decoder refuses (%v):\n%s", v2, err1, doc)
	case !reflect.DeepEqual(v1, v2):
		t.Fatalf("the decoders disagree on a %T:\n v1: %#v\n v2: %#v\nfrom:\n%s", v2, v1, v2, doc)
	}
	return true
}

// TestDecodeJSONRefuses shows what decodeJSON refuses that the v1 decoder lets by — a member
// name twice in one object (v1 keeps the last value, a place for what is decided and what is
// mutated to differ) and a string that is not UTF-8 — beside what both refuse (trailing
// garbage, a truncated document); and that a field name differing in case is ignored, as the
// API server's serializer ignores it.
func TestDecodeJSONRefuses(t *testing.T) {
	for name, doc := range map[string]string{
		"repeated member":    `{"apiVersion":"v1","kind":"Pod","spec":{"serviceAccountName":"a","serviceAccountName":"admin"}}`,
		"repeated label":     `{"apiVersion":"v1","kind":"Pod","metadata":{"labels":{"a":"1","a":"2"}}}`,
		"invalid UTF-8":      "{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\xff\"}}",
		"trailing garbage":   `{"apiVersion":"v1","kind":"Pod"} {}`,
		"truncated document": `{"apiVersion":"v1","kind":"Pod","spec":{`,
	} {
		if err := decodeJSON([]byte(doc), &corev1.Pod{}); err == nil {
			t.Errorf("%s: decoded, want an error", name)
		}
	}
	var pod corev1.Pod
	if err := decodeJSON([]byte(`{"apiVersion":"v1","kind":"Pod","Spec":{"serviceAccountName":"admin"},"spec":{"ServiceAccountName":"admin"}}`), &pod); err != nil {
		t.Fatal(err)
	}
	if pod.Spec.ServiceAccountName != "" {
		t.Errorf("a field name in another case was read: serviceAccountName %q", pod.Spec.ServiceAccountName)
	}
}

// FuzzDecodeJSON holds decodeJSON to the v1 decoder on what the fuzzer makes of the fixtures:
// whatever decodeJSON accepts, v1 accepts and decodes the same, and decodeObject decodes the
// same but for what it leaves out; whatever decodeObject accepts is valid JSON (make fuzz).
func FuzzDecodeJSON(f *testing.F) {
	for _, doc := range decodeCases(f) {
		f.Add(doc)
		var ar admissionv1.AdmissionReview
		if kjson.UnmarshalCaseSensitivePreserveInts(doc, &ar) == nil && ar.Request != nil && len(ar.Request.Object.Raw) > 0 {
			f.Add(bytes.Clone(ar.Request.Object.Raw))
		}
	}
	f.Add([]byte(everyUnread))
	f.Fuzz(func(t *testing.T, doc []byte) {
		if len(doc) > 1<<16 || strings.Count(string(doc), "[")+strings.Count(string(doc), "{") > 1000 {
			return
		}
		sameDecode(t, doc, &admissionv1.AdmissionReview{}, &admissionv1.AdmissionReview{})
		for i := range workload.Kinds {
			k := &workload.Kinds[i]
			if k.Custom() {
				continue
			}
			if sameDecode(t, doc, k.New(), k.New()) {
				sameObject(t, doc, k.New)
			}
			// What decodeObject accepts is JSON as RFC 7493 has it: no member name twice in one
			// object, UTF-8 strings — in the members it leaves out too.
			if decodeObject(doc, k.New()) == nil && !jsontext.Value(doc).IsValid() {
				t.Fatalf("decodeObject accepted into %T what is not valid JSON:\n%s", k.New(), doc)
			}
		}
	})
}
