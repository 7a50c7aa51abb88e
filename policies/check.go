package policies

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/format"
)

// CheckDir checks the Rego files of dir (tests included) as `opa fmt` and `opa check
// --strict` would: every file formatted, and the files compiled strictly (no unused variables
// or imports, no shadowed names) together with the built-in rules. With fix, unformatted files
// are rewritten instead of reported. It returns every problem found.
func CheckDir(dir string, fix bool) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.rego"))
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	var problems []string
	modules := map[string]*ast.Module{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", f, err)
		}
		formatted, err := format.SourceWithOpts(f, b, format.Opts{RegoVersion: ast.RegoV1})
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if !bytes.Equal(b, formatted) {
			if fix {
				if err := os.WriteFile(f, formatted, 0o644); err != nil {
					return nil, fmt.Errorf("write %s: %w", f, err)
				}
			} else {
				problems = append(problems, fmt.Sprintf("%s: not formatted as opa fmt would (run credgate policy check --fix)", f))
			}
		}
		m, err := ast.ParseModuleWithOpts(f, string(formatted), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		modules[f] = m
	}
	// Compile with the built-ins unless dir is the built-ins' own directory.
	for name, text := range mergeMaps(Builtin().Modules, Builtin().Tests) {
		if _, ok := modules[filepath.Join(dir, strings.TrimPrefix(name, "builtin/"))]; ok {
			continue
		}
		m, err := ast.ParseModuleWithOpts(name, text, ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return nil, fmt.Errorf("parse built-in %s: %w", name, err)
		}
		modules[name] = m
	}
	c := ast.NewCompiler().WithStrict(true).WithDefaultRegoVersion(ast.RegoV1)
	if c.Compile(modules); c.Failed() {
		for _, e := range c.Errors {
			problems = append(problems, e.Error())
		}
	}
	return problems, nil
}

func mergeMaps(a, b map[string]string) map[string]string {
	out := make(map[string]string, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
