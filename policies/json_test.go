package policies

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
)

// reference is what parseJSON must equal: OPA's own path from JSON to a value.
func reference(data []byte) (ast.Value, error) {
	var x any
	if err := util.UnmarshalJSON(data, &x); err != nil {
		return nil, err
	}
	return ast.InterfaceToValue(x)
}

var jsonSeeds = []string{
	`{}`, `[]`, `null`, `true`, `false`, `0`, `-0`, `1.5e3`, `-12.25E-2`, `123456789012345678901234567890`,
	`"plain"`, `"esc\"aped\\ \/ \b\f\n\r\t"`, `"\u00e9\ud83d\ude00"`, `"\ud800"`, "\"caf\xc3\xa9\"", "\"bad \xff byte\"",
	`{"a":1,"a":2}`, `{"a":1,"\u0061":2}`, `{"b":{"a":1,"c":2,"a":3}}`,
	// Repeated names among more members than repeats compares pairwise.
	`{"a":0,"b":1,"c":2,"d":3,"e":4,"f":5,"g":6,"h":7,"i":8,"j":9,"k":10,"l":11,"m":12,"n":13,"o":14,"p":15,"q":16,"a":17}`,
	`{"a":0,"b":1,"c":2,"d":3,"e":4,"f":5,"g":6,"h":7,"i":8,"j":9,"k":10,"l":11,"m":12,"n":13,"o":14,"p":15,"q":16,"r":17}`,
	`{"a":[1,{"b":null}],"c":"d"}`, `{"a":[{"b":1,"c":2},3,{"c":[4]},[{"c":5}]],"z":{"b":[{"c":6}],"c":7}}`, `{"a":{"x":{"b":1,"c":2}}}`, ` { "spaced" : [ 1 , 2 ] } `,
	`{"resources":{"limits":{"cpu":"1000m","memory":"1Gi"}},"runAsUser":1000,"ratio":0.5}`,
	// Invalid: both must refuse.
	``, `{`, `[1,]`, `{"a" 1}`, `{"a":1,}`, `01`, `1.`, `.5`, `-`, `1e`, `tru`, `nul`, `"unterminated`,
	"\"ctl\x01\"", `{"a":1} x`, `[1 2]`, `"\x"`, `{1:2}`,
	// Out of OPA's range, in a member read and in one skipped: both must refuse.
	`{"a":1e999999}`, `{"q":1e999999,"a":1}`, `{"q":[-1e40000]}`,
}

func checkParseJSON(t *testing.T, data []byte) {
	t.Helper()
	want, werr := reference(data)
	got, gerr := parseJSON(data)
	switch {
	case werr != nil && gerr == nil:
		t.Fatalf("parseJSON(%q) accepted what encoding/json refuses (%v): %v", data, werr, got)
	case werr == nil && gerr != nil:
		t.Fatalf("parseJSON(%q) refused valid JSON: %v", data, gerr)
	case werr == nil && want.Compare(got) != 0:
		t.Fatalf("parseJSON(%q) = %v, want %v", data, got, want)
	}
	// Parsed for a read set, it is as strict, and it is the whole value without what the set
	// does not read.
	for _, reads := range jsonReadSets {
		got, gerr := parseJSONReads(data, reads)
		switch {
		case werr != nil && gerr == nil:
			t.Fatalf("parseJSONReads(%q, %q) accepted what encoding/json refuses (%v): %v", data, reads.paths(), werr, got)
		case werr == nil && gerr != nil:
			t.Fatalf("parseJSONReads(%q, %q) refused valid JSON: %v", data, reads.paths(), gerr)
		case werr == nil && project(want, reads).Compare(got) != 0:
			t.Fatalf("parseJSONReads(%q, %q) = %v, want %v", data, reads.paths(), got, project(want, reads))
		}
	}
}

// jsonReadSets are the read sets checkParseJSON parses each document for: one of a pod's
// members, one of short names the seeds use, none, and two that read members of an array's
// elements.
var jsonReadSets = []*readSet{
	readsOf("spec.containers", "spec.serviceAccountName", "metadata.labels.team", "metadata.name.x", "a.b"),
	readsOf("a", "c.d", "resources.limits.cpu", "spaced"),
	{},
	// Of each element of an array: the containers', and one in the seeds (an object there
	// is kept whole).
	eachOf(readsOf("request.object.spec.serviceAccountName"), []string{"request", "object", "spec", "containers"}, readsOf("name", "env")),
	eachOf(readsOf("z.b"), []string{"a"}, readsOf("b")),
}

// eachOf is s with each element of an array at path read as each reads.
func eachOf(s *readSet, path []string, each *readSet) *readSet {
	s.addEach(path, each)
	return s
}

// project is v without the members of its objects that reads does not read.
func project(v ast.Value, reads *readSet) ast.Value {
	if a, ok := v.(*ast.Array); ok && reads != nil && reads.elems() != nil {
		elems := make([]*ast.Term, a.Len())
		for i := range elems {
			elems[i] = ast.NewTerm(project(a.Elem(i).Value, reads.elems()))
		}
		return ast.NewArray(elems...)
	}
	o, ok := v.(ast.Object)
	if !ok || reads == nil || reads.whole || reads.each != nil {
		return v
	}
	out := ast.NewObject()
	o.Foreach(func(k, e *ast.Term) {
		if m := reads.members[string(k.Value.(ast.String))]; m != nil {
			out.Insert(k, ast.NewTerm(project(e.Value, m)))
		}
	})
	return out
}

func TestParseJSON(t *testing.T) {
	for _, s := range jsonSeeds {
		checkParseJSON(t, []byte(s))
	}
	// Every admission request the webhook tests use.
	files, err := filepath.Glob(filepath.Join("..", "webhook", "testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures: %v", err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		checkParseJSON(t, data)
	}
	if _, err := parseJSON([]byte(strings.Repeat("[", maxDepth+2) + strings.Repeat("]", maxDepth+2))); err == nil {
		t.Error("parseJSON accepted a document nested deeper than maxDepth")
	}
}

// FuzzParseJSON holds parseJSON to OPA's own conversion on any input. CI runs the seeds;
// go test ./policies/ -run '^$' -fuzz FuzzParseJSON explores.
func FuzzParseJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if strings.Count(string(data), "[")+strings.Count(string(data), "{") > maxDepth/2 {
			return // depth limits differ in where they stop; both stop
		}
		checkParseJSON(t, data)
	})
}
