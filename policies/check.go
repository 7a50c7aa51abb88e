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
// or imports, no shadowed names) together with the built-in rules; and that none declares a
// package reserved for credgate (unless dir is the built-ins' own directory, policies/). With
// fix, unformatted files are rewritten instead of reported. It returns every problem found.
func CheckDir(dir string, fix bool) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.rego"))
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	builtinDir := isBuiltinDir(files)
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
		m, err := ast.ParseModuleWithOpts(f, string(formatted), parserOptions)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if !builtinDir {
			if err := checkUserModule(f, m, strings.HasSuffix(f, "_test.rego")); err != nil {
				problems = append(problems, err.Error())
				continue
			}
		}
		modules[f] = m
	}
	// Compile with the built-ins unless dir is the built-ins' own directory.
	for name, text := range builtinFiles() {
		if builtinDir {
			break
		}
		m, err := ast.ParseModuleWithOpts(name, text, parserOptions)
		if err != nil {
			return nil, fmt.Errorf("parse built-in %s: %w", name, err)
		}
		modules[name] = m
	}
	c := ast.NewCompiler().WithStrict(true).WithDefaultRegoVersion(ast.RegoV1).WithCapabilities(capabilities())
	if c.Compile(modules); c.Failed() {
		for _, e := range c.Errors {
			problems = append(problems, e.Error())
		}
	}
	return problems, nil
}

// isBuiltinDir says whether files are those of the built-ins' own directory: every built-in
// file is among them. (A user directory with a file named like one of them, lib.rego, is
// checked as a user directory.)
func isBuiltinDir(files []string) bool {
	base := map[string]bool{}
	for _, f := range files {
		base[filepath.Base(f)] = true
	}
	for name := range builtinFiles() {
		if !base[strings.TrimPrefix(name, builtinPrefix)] {
			return false
		}
	}
	return true
}
