package policies

import (
	"crypto/sha256"
	"embed"
	"encoding/binary"
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
	"sync"

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
	// Objects are the policies served from Kubernetes objects, by name; the module of each
	// is Modules[ObjectFile(name)].
	Objects map[string]Object
}

// builtinPrefix starts the names of the built-in files.
const builtinPrefix = "builtin/"

// builtinFiles are the embedded files' texts by name (builtin/<file>), read once.
var builtinFiles = sync.OnceValue(func() map[string]string {
	entries, err := builtin.ReadDir(".")
	if err != nil {
		panic(fmt.Sprintf("read embedded policies: %v", err)) // the embed directive guarantees it
	}
	files := make(map[string]string, len(entries))
	for _, e := range entries {
		b, err := builtin.ReadFile(e.Name())
		if err != nil {
			panic(fmt.Sprintf("read embedded policy %s: %v", e.Name(), err))
		}
		files[builtinPrefix+e.Name()] = string(b)
	}
	return files
})

// Builtin returns credgate's built-in rules and their tests, named builtin/<file>: the rules
// in packages under credgate.builtin, the helpers of credgate.lib, the test fixtures of
// credgate.test.
func Builtin() Source {
	s := Source{Modules: map[string]string{}, Tests: map[string]string{}, Data: map[string]any{}}
	for name, text := range builtinFiles() {
		s.add(name, text)
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

// LoadDir reads the policy files of dir, named user/<path in dir>: *.rego modules, *_test.rego
// tests, CredentialPolicy objects (a YAML or JSON file holding one: served as the cluster's,
// its module named policy/<name>.rego), and *.json, *.yaml, *.yml data documents, merged at
// the root of data. Names starting
// with "." are skipped, which covers the ..data directories of a mounted ConfigMap (whose files
// are reached through the symlinks beside them). An empty dir yields an empty Source. A data
// document with the top-level key credgate is refused (a *ReservedError): data.credgate is
// credgate's. (Modules declaring a reserved package are refused when they compile.)
func LoadDir(dir string) (Source, error) {
	return loadDir(dir, "user/")
}

// LoadDirs returns the built-in policies with the files of each of dirs, each named by its
// path (dir/file.rego), as the policy commands report them.
func LoadDirs(dirs ...string) (Source, error) {
	src := Builtin()
	for _, d := range dirs {
		user, err := loadDir(d, filepath.ToSlash(filepath.Clean(d))+"/")
		if err != nil {
			return Source{}, err
		}
		if src, err = Merge(src, user); err != nil {
			return Source{}, err
		}
	}
	return src, nil
}

func loadDir(dir, prefix string) (Source, error) {
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
		name := prefix + filepath.ToSlash(rel)
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
			if obj, ok, err := parseObject(b, name); ok || err != nil {
				if err == nil {
					err = s.addObject(obj, name)
				}
				if err != nil {
					errs = append(errs, err)
				}
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
	if err := checkUserData(name, doc); err != nil {
		return err
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
		for _, files := range [][2]map[string]string{{src.Modules, out.Modules}, {src.Tests, out.Tests}} {
			for n, t := range files[0] {
				if _, ok := out.Modules[n]; ok {
					return Source{}, fmt.Errorf("policy file %s is defined twice", n)
				}
				if _, ok := out.Tests[n]; ok {
					return Source{}, fmt.Errorf("policy file %s is defined twice", n)
				}
				files[1][n] = t
			}
		}
		for k, v := range src.Data {
			if _, ok := out.Data[k]; ok {
				return Source{}, fmt.Errorf("data key %q is defined twice", k)
			}
			out.Data[k] = v
		}
		for n, o := range src.Objects {
			if out.Objects == nil {
				out.Objects = map[string]Object{}
			}
			if _, ok := out.Objects[n]; ok {
				return Source{}, fmt.Errorf("policy object %s is defined twice", n)
			}
			out.Objects[n] = o
		}
	}
	return out, nil
}

// Revision is a content hash of the modules, data and objects (tests excluded):
// "sha256:<hex>".
func (s Source) Revision() string {
	h := sha256.New()
	names := make([]string, 0, len(s.Modules))
	for n := range s.Modules {
		names = append(names, n)
	}
	slices.Sort(names)
	// Every part length-prefixed: no two sources share a revision, whatever their text.
	part := func(b []byte) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	for _, n := range names {
		part([]byte(n))
		part([]byte(s.Modules[n]))
	}
	data, _ := json.Marshal(s.Data) // map keys are sorted; the values came from JSON or YAML
	part(data)
	if len(s.Objects) > 0 {
		objects, _ := json.Marshal(s.Objects) // sorted by name; enforcement and selector
		part(objects)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// data is the data document, empty rather than nil: OPA's store needs an object at its root.
func (s Source) data() map[string]any {
	if s.Data == nil {
		return map[string]any{}
	}
	return s.Data
}
