package policies

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

//go:embed *.rego
var builtin embed.FS

// Source is a set of policy files: Rego modules, Rego tests and data documents.
type Source struct {
	// Modules and Tests map a file name to its Rego text.
	Modules map[string]string
	Tests   map[string]string
	// Data is merged from every JSON and YAML file, at the root of data.
	Data map[string]any
}

// Builtin returns credgate's built-in rules and their tests, named builtin/<file>.
func Builtin() Source {
	s := Source{Modules: map[string]string{}, Tests: map[string]string{}, Data: map[string]any{}}
	entries, err := builtin.ReadDir(".")
	if err != nil {
		panic(fmt.Sprintf("read embedded policies: %v", err)) // the embed directive guarantees it
	}
	for _, e := range entries {
		b, err := builtin.ReadFile(e.Name())
		if err != nil {
			panic(fmt.Sprintf("read embedded policy %s: %v", e.Name(), err))
		}
		s.add("builtin/"+e.Name(), string(b))
	}
	return s
}

func (s *Source) add(name, text string) {
	if strings.HasSuffix(name, "_test.rego") {
		s.Tests[name] = text
	} else {
		s.Modules[name] = text
	}
}

// LoadDir reads the policy files of dir: *.rego modules, *_test.rego tests, and *.json,
// *.yaml, *.yml data documents, merged at the root of data. Names starting with "." are
// skipped, which covers the ..data directories of a mounted ConfigMap (whose files are reached
// through the symlinks beside them). An empty dir yields an empty Source.
func LoadDir(dir string) (Source, error) {
	s := Source{Modules: map[string]string{}, Tests: map[string]string{}, Data: map[string]any{}}
	if dir == "" {
		return s, nil
	}
	var errs []error
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && p != dir {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		name := "user/" + filepath.ToSlash(rel)
		switch ext := path.Ext(p); ext {
		case ".rego", ".json", ".yaml", ".yml":
			b, err := os.ReadFile(p) // follows the ConfigMap's symlinks
			if err != nil {
				return fmt.Errorf("read %s: %w", p, err)
			}
			if ext == ".rego" {
				s.add(name, string(b))
				return nil
			}
			if err := mergeData(s.Data, b, name); err != nil {
				errs = append(errs, err)
			}
		}
		return nil
	})
	if err != nil {
		return Source{}, fmt.Errorf("load policy directory %s: %w", dir, err)
	}
	if len(errs) > 0 {
		return Source{}, errors.Join(errs...)
	}
	return s, nil
}

func mergeData(into map[string]any, b []byte, name string) error {
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return fmt.Errorf("data file %s: %w", name, err)
	}
	for k, v := range doc {
		if _, ok := into[k]; ok {
			return fmt.Errorf("data file %s: key %q is already defined by another data file", name, k)
		}
		into[k] = v
	}
	return nil
}

// Merge returns the union of a and b; a file or data key in both is an error.
func Merge(a, b Source) (Source, error) {
	out := Source{Modules: map[string]string{}, Tests: map[string]string{}, Data: map[string]any{}}
	for _, src := range []Source{a, b} {
		for n, t := range src.Modules {
			out.Modules[n] = t
		}
		for n, t := range src.Tests {
			out.Tests[n] = t
		}
		for k, v := range src.Data {
			if _, ok := out.Data[k]; ok {
				return Source{}, fmt.Errorf("data key %q is defined twice", k)
			}
			out.Data[k] = v
		}
	}
	return out, nil
}

// Revision is a content hash of the modules and data (tests excluded): "sha256:<hex>".
func (s Source) Revision() string {
	h := sha256.New()
	names := make([]string, 0, len(s.Modules))
	for n := range s.Modules {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		h.Write([]byte(n + "\x00" + s.Modules[n] + "\x00"))
	}
	data, _ := json.Marshal(s.Data) // map keys are sorted; the values came from JSON or YAML
	h.Write(data)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// data is the data document, empty rather than nil: OPA's store needs an object at its root.
func (s Source) data() map[string]any {
	if s.Data == nil {
		return map[string]any{}
	}
	return s.Data
}
