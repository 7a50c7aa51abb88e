package policies

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
)

// jsonBenchInputs are the documents BenchmarkJSON parses, compacted as the API server sends
// them: the object of a pod the Job controller creates (managed fields, a projected token
// volume, three containers; what Input.Value parses for every admission), and the largest
// bundled sample input, a Job's whole input document.
func jsonBenchInputs(b *testing.B) []struct {
	name string
	data []byte
} {
	b.Helper()
	read := func(path string) []byte {
		data, err := os.ReadFile(path)
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	compact := func(data []byte) []byte {
		var buf bytes.Buffer
		if err := json.Compact(&buf, data); err != nil {
			b.Fatal(err)
		}
		return buf.Bytes()
	}
	var review struct {
		Request struct {
			Object json.RawMessage `json:"object"`
		} `json:"request"`
	}
	if err := json.Unmarshal(read(filepath.Join("..", "webhook", "testdata", "pod-training.json")), &review); err != nil {
		b.Fatal(err)
	}
	return []struct {
		name string
		data []byte
	}{
		{"pod-training", compact(review.Request.Object)},
		{"job-every-cloud", compact(read(filepath.Join("canary", "job-every-cloud.json")))},
	}
}

// BenchmarkJSON compares the ways from an admitted object's JSON to an OPA value: parseJSON,
// OPA's own ast.ValueFromReader, and util.UnmarshalJSON then ast.InterfaceToValue (the
// reference the tests hold parseJSON to).
//
//	go test ./policies/ -run '^$' -bench JSON -benchmem -count 5
func BenchmarkJSON(b *testing.B) {
	for _, in := range jsonBenchInputs(b) {
		b.Run(in.name+"/parseJSON", func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := parseJSON(in.data); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(in.name+"/ValueFromReader", func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := ast.ValueFromReader(bytes.NewReader(in.data)); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(in.name+"/UnmarshalJSON+InterfaceToValue", func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			b.ReportAllocs()
			for b.Loop() {
				var x any
				if err := util.UnmarshalJSON(in.data, &x); err != nil {
					b.Fatal(err)
				}
				if _, err := ast.InterfaceToValue(x); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
