package mutate_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
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
		"variables and mounts": {
			{Operation: "add", Path: "/spec/containers/0/env/3", Value: &corev1.EnvVar{Name: "WANDB_API_KEY", ValueFrom: secretKey("wandb", "key", nil)}},
			{Operation: "add", Path: "/spec/containers/0/env/4", Value: &corev1.EnvVar{Name: "WANDB_ENTITY", Value: "ml-team"}},
			{Operation: "add", Path: "/spec/containers/0/env/5", Value: &corev1.EnvVar{Name: "A", Value: "v", ValueFrom: secretKey("", "k", new(true))}},
			{Operation: "add", Path: "/spec/containers/0/env/6", Value: &corev1.EnvVar{Name: "B", ValueFrom: secretKey("s", "", new(false))}},
			{Operation: "add", Path: "/spec/containers/0/env/7", Value: &corev1.EnvVar{}},
			{Operation: "add", Path: "/spec/containers/0/volumeMounts/1", Value: &corev1.VolumeMount{Name: "credgate-kaggle", MountPath: "/root/.kaggle", ReadOnly: true}},
			{Operation: "add", Path: "/spec/containers/0/volumeMounts/2", Value: &corev1.VolumeMount{Name: "m", MountPath: "/x", SubPath: "a/b"}},
			{Operation: "add", Path: "/spec/containers/1/env", Value: []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", ValueFrom: secretKey("s", "k", nil)}}},
			{Operation: "add", Path: "/spec/containers/1/volumeMounts", Value: []corev1.VolumeMount{{Name: "a", MountPath: "/a"}, {Name: "b", MountPath: "/b", ReadOnly: true}}},
			{Operation: "add", Path: "/spec/containers/2/env", Value: []corev1.EnvVar{}},
			{Operation: "add", Path: "/spec/containers/2/volumeMounts", Value: []corev1.VolumeMount(nil)},
		},
		// Shapes credgate does not give its own, which encoding/json writes.
		"other variables and mounts": {
			{Operation: "add", Path: "/a", Value: &corev1.EnvVar{Name: "A", ValueFrom: &corev1.EnvVarSource{}}},
			{Operation: "add", Path: "/b", Value: &corev1.EnvVar{Name: "B", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}},
			{Operation: "add", Path: "/c", Value: &corev1.EnvVar{Name: "C", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{Key: "k"},
				ConfigMapKeyRef: &corev1.ConfigMapKeySelector{Key: "k"}}}},
			{Operation: "add", Path: "/d", Value: &corev1.VolumeMount{Name: "d", MountPath: "/d", MountPropagation: new(corev1.MountPropagationHostToContainer)}},
			{Operation: "add", Path: "/e", Value: &corev1.VolumeMount{Name: "e", MountPath: "/e", SubPathExpr: "$(POD)", BindMountOptions: []string{}}},
			{Operation: "add", Path: "/f", Value: []corev1.EnvVar{{Name: "A"}, {Name: "B", ValueFrom: &corev1.EnvVarSource{}}}},
			{Operation: "add", Path: "/g", Value: corev1.EnvVar{Name: "by value", Value: "v"}},
			{Operation: "add", Path: "/h", Value: (*corev1.EnvVar)(nil)},
			{Operation: "add", Path: "/i", Value: (*corev1.VolumeMount)(nil)},
		},
		"escaped variables and mounts": {
			{Operation: "add", Path: "/a", Value: &corev1.EnvVar{Name: "<A&B>", Value: "\u2028\"\\\x01\xff", ValueFrom: secretKey("caf\u00e9", "k>", nil)}},
			{Operation: "add", Path: "/b", Value: []corev1.VolumeMount{{Name: "\x7f", MountPath: "/<p>", SubPath: "\u2029"}}},
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

func secretKey(name, key string, optional *bool) *corev1.EnvVarSource {
	return &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key, Optional: optional}}
}

// FuzzEncodeKnown holds EncodePatch to json.Marshal on variables and mounts of the shapes it
// writes itself, with whatever strings the fuzzer makes (make fuzz).
func FuzzEncodeKnown(f *testing.F) {
	f.Add("HF_TOKEN", "", "hf", "token", "/root/.cache", byte(0))
	f.Add("<&>", "\u2028", "caf\u00e9", "\xff", "a\"b", byte(0xff))
	f.Fuzz(func(t *testing.T, name, value, secret, key, path string, flags byte) {
		optional := []*bool{nil, new(false), new(true)}[flags%3]
		var from *corev1.EnvVarSource
		if flags&4 != 0 {
			from = secretKey(secret, key, optional)
		}
		env := corev1.EnvVar{Name: name, Value: value, ValueFrom: from}
		mount := corev1.VolumeMount{Name: secret, MountPath: path, ReadOnly: flags&8 != 0}
		if flags&16 != 0 {
			mount.SubPath = key
		}
		ops := []jsonpatch.Operation{
			{Operation: "add", Path: "/a", Value: &env},
			{Operation: "add", Path: "/b", Value: &mount},
			{Operation: "add", Path: "/c", Value: []corev1.EnvVar{env, env}},
			{Operation: "add", Path: "/d", Value: []corev1.VolumeMount{mount}},
		}
		want, err := json.Marshal(ops)
		if err != nil {
			t.Fatal(err)
		}
		got, err := mutate.EncodePatch(ops)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("EncodePatch gives\n%s\njson.Marshal gives\n%s", got, want)
		}
	})
}

// TestEncodeKnownFields lists the fields of the types EncodePatch writes itself, as it knows
// them: a field k8s.io/api adds must be taught to it (mutate/encode.go), or json.Marshal would
// write what it leaves out.
func TestEncodeKnownFields(t *testing.T) {
	for typ, want := range map[reflect.Type]string{
		reflect.TypeFor[corev1.EnvVar]():               `Name "name"; Value "value,omitempty"; ValueFrom "valueFrom,omitempty"`,
		reflect.TypeFor[corev1.EnvVarSource]():         `FieldRef "fieldRef,omitempty"; ResourceFieldRef "resourceFieldRef,omitempty"; ConfigMapKeyRef "configMapKeyRef,omitempty"; SecretKeyRef "secretKeyRef,omitempty"; FileKeyRef "fileKeyRef,omitempty"`,
		reflect.TypeFor[corev1.SecretKeySelector]():    `LocalObjectReference ""; Key "key"; Optional "optional,omitempty"`,
		reflect.TypeFor[corev1.LocalObjectReference](): `Name "name,omitempty"`,
		reflect.TypeFor[corev1.VolumeMount](): `Name "name"; ReadOnly "readOnly,omitempty"; RecursiveReadOnly "recursiveReadOnly,omitempty"; MountPath "mountPath"; ` +
			`SubPath "subPath,omitempty"; MountPropagation "mountPropagation,omitempty"; SubPathExpr "subPathExpr,omitempty"; BindMountOptions "bindMountOptions,omitempty"`,
	} {
		var fields []string
		for f := range typ.Fields() {
			fields = append(fields, fmt.Sprintf("%s %q", f.Name, f.Tag.Get("json")))
		}
		if got := strings.Join(fields, "; "); got != want {
			t.Errorf("%v has the fields\n  %s\nwhere EncodePatch knows\n  %s", typ, got, want)
		}
	}
}

// BenchmarkEncodePatch encodes the patch of a training pod's three credentials (the values
// mutate adds for them) with EncodePatch and with json.Marshal, which the webhook used before.
func BenchmarkEncodePatch(b *testing.B) {
	var ops []jsonpatch.Operation
	for c := range 4 {
		for _, n := range []string{"WANDB_API_KEY", "HF_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"} {
			ops = append(ops, jsonpatch.Operation{Operation: "add", Path: "/spec/containers/" + string(rune('0'+c)) + "/env/-",
				Value: &corev1.EnvVar{Name: n, ValueFrom: secretKey("s", n, nil)}}) // a pointer to the element, as Patch adds it
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
