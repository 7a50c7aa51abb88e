package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// document is one YAML document of an input, as JSON.
type document struct {
	source string // file name and document number, for messages
	json   []byte
	meta   metav1.TypeMeta
}

// readDocuments splits r into its YAML (or JSON) documents, skipping empty ones.
func readDocuments(r io.Reader, name string) ([]document, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(r))
	var docs []document
	for n := 1; ; n++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: read document %d: %w", name, n, err)
		}
		source := fmt.Sprintf("%s (document %d)", name, n)
		j, err := utilyaml.ToJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		if t := bytes.TrimSpace(j); len(t) == 0 || bytes.Equal(t, []byte("null")) {
			continue
		}
		d := document{source: source, json: j}
		if err := json.Unmarshal(j, &d.meta); err != nil {
			return nil, fmt.Errorf("%s: not a Kubernetes object: %w", source, err)
		}
		if d.meta.Kind == "" || d.meta.APIVersion == "" {
			return nil, fmt.Errorf("%s: apiVersion and kind are required", source)
		}
		docs = append(docs, d)
	}
}
