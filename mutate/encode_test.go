package mutate_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/credgate/credgate/mutate"
)

// TestEncodePatch holds EncodePatch to json.Marshal, byte for byte, on operations of every
// shape: no value, a null one, the values credgate adds, and strings that need escaping.
func TestEncodePatch(t *testing.T) {
	for name, ops := range map[string][]jsonpatch.Operation{
		"none":  nil,
		"empty": {},
		"values": {
			{Operation: "add", Path: "/spec/containers/0/env/-", Value: corev1.EnvVar{Name: "HF_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "hf"}, Key: "token"}}}},
			{Operation: "add", Path: "/spec/volumes", Value: []corev1.Volume{{Name: "credgate-kaggle", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "kaggle"}}}}},
			{Operation: "add", Path: "/metadata/annotations", Value: map[string]string{"credgate.dev/injected": "hf,wandb", "b": "<&>"}},
			{Operation: "add", Path: "/spec/containers/1/resources", Value: corev1.ResourceRequirements{Limits: corev1.ResourceList{"cpu": resource.MustParse("1000m")}}},
		},
		"null values": {
			{Operation: "add", Path: "/a"},
			{Operation: "replace", Path: "/b"},
			{Operation: "remove", Path: "/c"},
			{Operation: "test", Path: "/d"},
		},
		"escaped": {
			{Operation: "add", Path: "/metadata/labels/credentials.credgate.dev~1hf", Value: "true"},
			{Operation: "add", Path: "/metadata/annotations/a\"b\\c<d>&e", Value: "\u2028\u2029\x01"},
			{Operation: "replace", Path: "/metadata/annotations/caf\u00e9\xff", Value: "\xfe"},
			{Operation: "add", Path: "/x", Value: json.RawMessage(`{ "spaced" : [1, 2] }`)},
		},
	} {
		want, err := json.Marshal(ops)
		if err != nil {
			t.Fatal(err)
		}
		got, err := mutate.EncodePatch(ops)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: EncodePatch gives\n%s\njson.Marshal gives\n%s", name, got, want)
		}
	}
	if _, err := mutate.EncodePatch([]jsonpatch.Operation{{Operation: "add", Path: "/a", Value: func() {}}}); err == nil {
		t.Error("a value json cannot encode was encoded")
	}
}

// BenchmarkEncodePatch encodes the patch of a training pod's three credentials (the values
// mutate adds for them) with EncodePatch and with json.Marshal, which the webhook used before.
func BenchmarkEncodePatch(b *testing.B) {
	var ops []jsonpatch.Operation
	for c := range 4 {
		for _, n := range []string{"WANDB_API_KEY", "HF_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"} {
			ops = append(ops, jsonpatch.Operation{Operation: "add", Path: "/spec/containers/" + string(rune('0'+c)) + "/env/-",
				Value: corev1.EnvVar{Name: n, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: n}}}})
		}
	}
	ops = append(ops, jsonpatch.Operation{Operation: "add", Path: "/metadata/annotations/credgate.dev~1injected", Value: "aws,hf,wandb"})
	for name, encode := range map[string]func([]jsonpatch.Operation) ([]byte, error){
		"EncodePatch":  mutate.EncodePatch,
		"json.Marshal": func(ops []jsonpatch.Operation) ([]byte, error) { return json.Marshal(ops) },
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := encode(ops); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
