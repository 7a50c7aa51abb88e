package webhook

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
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
	var reviews, objects int
	for _, doc := range decodeCases(t) {
		var ar admissionv1.AdmissionReview
		if sameDecode(t, doc, &ar, &admissionv1.AdmissionReview{}) && ar.Request != nil {
			reviews++
			for _, raw := range [][]byte{ar.Request.Object.Raw, ar.Request.OldObject.Raw} {
				if len(raw) > 0 {
					objects += decodeAsEveryKind(t, raw)
				}
			}
			continue
		}
		objects += decodeAsEveryKind(t, doc)
	}
	if reviews < 10 || objects < 20 {
		t.Fatalf("only %d reviews and %d objects decoded: the fixtures are not being read", reviews, objects)
	}
}

// decodeAsEveryKind decodes raw as each typed kind with both decoders; it returns how many
// decoded.
func decodeAsEveryKind(t *testing.T, raw []byte) int {
	n := 0
	for i := range workload.Kinds {
		k := &workload.Kinds[i]
		if k.Custom() {
			continue
		}
		if sameDecode(t, raw, k.New(), k.New()) {
			n++
		}
	}
	return n
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
// whatever decodeJSON accepts, v1 accepts and decodes the same (make fuzz).
func FuzzDecodeJSON(f *testing.F) {
	for _, doc := range decodeCases(f) {
		f.Add(doc)
		var ar admissionv1.AdmissionReview
		if kjson.UnmarshalCaseSensitivePreserveInts(doc, &ar) == nil && ar.Request != nil && len(ar.Request.Object.Raw) > 0 {
			f.Add(bytes.Clone(ar.Request.Object.Raw))
		}
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		if len(doc) > 1<<16 || strings.Count(string(doc), "[")+strings.Count(string(doc), "{") > 1000 {
			return
		}
		sameDecode(t, doc, &admissionv1.AdmissionReview{}, &admissionv1.AdmissionReview{})
		for i := range workload.Kinds {
			if k := &workload.Kinds[i]; !k.Custom() {
				sameDecode(t, doc, k.New(), k.New())
			}
		}
	})
}
