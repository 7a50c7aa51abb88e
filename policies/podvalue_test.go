package policies

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// TestPodValue: input.pod is the object's pod template with the labels credgate judges it by;
// a Pod whose labels are exactly its own is the object itself, and every other case the
// template with its labels replaced: the same value either way.
func TestPodValue(t *testing.T) {
	for _, tt := range []struct {
		name   string
		object string
		path   []string
		labels map[string]string
		shared bool
	}{
		{"a pod's own labels", `{"kind":"Pod","metadata":{"name":"p","labels":{"a":"1","b":"2"}},"spec":{"containers":[]}}`, nil, map[string]string{"a": "1", "b": "2"}, true},
		{"no labels, none given", `{"kind":"Pod","metadata":{"name":"p"},"spec":{}}`, nil, nil, false},
		{"no metadata", `{"kind":"Pod","spec":{}}`, nil, map[string]string{}, false},
		{"empty labels", `{"kind":"Pod","metadata":{"labels":{}}}`, nil, map[string]string{}, true},
		{"a label more", `{"kind":"Pod","metadata":{"labels":{"a":"1"}}}`, nil, map[string]string{"a": "1", "credentials.credgate.dev/hf": "true"}, false},
		{"a label less", `{"kind":"Pod","metadata":{"labels":{"a":"1","b":"2"}}}`, nil, map[string]string{"a": "1"}, false},
		{"another value", `{"kind":"Pod","metadata":{"labels":{"a":"1"}}}`, nil, map[string]string{"a": "2"}, false},
		{"a number where a label is", `{"kind":"Pod","metadata":{"labels":{"a":1}}}`, nil, map[string]string{"a": "1"}, false},
		{"labels not an object", `{"kind":"Pod","metadata":{"labels":["a"]}}`, nil, map[string]string{}, false},
		{"a job's template", `{"kind":"Job","spec":{"template":{"metadata":{"labels":{"a":"1"}},"spec":{}}}}`, []string{"spec", "template"}, map[string]string{"a": "1"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			object, err := ParseObject([]byte(tt.object))
			if err != nil {
				t.Fatal(err)
			}
			tmpl := object
			for _, p := range tt.path {
				tmpl = valueAt(tmpl.(ast.Object), p)
			}
			want := withLabels(tmpl.(ast.Object), tt.labels)
			got := podValue(object, tt.path, tt.labels, nil)
			if got.Compare(want) != 0 {
				t.Errorf("podValue = %v, want %v", got, want)
			}
			if shared := got == object; shared != tt.shared {
				t.Errorf("the object itself returned: %t, want %t", shared, tt.shared)
			}
		})
	}
}
