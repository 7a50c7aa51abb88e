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
// --strict --schema` would: every file formatted, and the files compiled strictly (no unused
// variables or imports, no shadowed names) together with the built-in rules, every reference
// to input type-checked against the input schema (InputSchema: input.credentialz is an
// error); and that none declares a package reserved for credgate (unless dir is the built-ins'
// own directory, policies/). With fix, unformatted files are rewritten instead of reported.
// It returns every problem found, each located in its file as it is on disk (as written, or
// as rewritten by fix): the lines `credgate policy test` reports too.
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
		// The module compiled is the file as it is on disk, so that every problem is reported
		// at its line in the file: not the formatted text, whose lines may differ.
		m, err := ast.ParseModuleWithOpts(f, string(b), parserOptions)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		formatted, err := format.SourceWithOpts(f, b, format.Opts{RegoVersion: ast.RegoV1})
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: opa fmt cannot format it: %v", f, err))
		case bytes.Equal(b, formatted):
		case fix:
			if err := os.WriteFile(f, formatted, 0o644); err != nil {
				return nil, fmt.Errorf("write %s: %w", f, err)
			}
			if m, err = ast.ParseModuleWithOpts(f, string(formatted), parserOptions); err != nil {
				problems = append(problems, err.Error())
				continue
			}
		default:
			problems = append(problems, fmt.Sprintf("%s: not formatted as opa fmt would (run credgate policy check --fix)", f))
		}
		if !builtinDir {
			if err := checkUserModule(f, m, strings.HasSuffix(f, "_test.rego")); err != nil {
				problems = append(problems, err.Error())
				continue
			}
		}
		modules[f] = m
	}
	problems = append(problems, checkObjectFiles(dir, modules)...)
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
	schemas, err := inputSchemaSet()
	if err != nil {
		return nil, err
	}
	c := ast.NewCompiler().WithStrict(true).WithDefaultRegoVersion(ast.RegoV1).WithCapabilities(capabilities()).
		WithSchemas(schemas).WithUseTypeCheckAnnotations(true)
	if c.Compile(modules); c.Failed() {
		for _, e := range c.Errors {
			problems = append(problems, describeCompileError(e))
		}
	}
	return problems, nil
}

// describeCompileError is e as OPA writes it, but for a reference into input the type checker
// refuses: that says which member the input schema lacks, and which it has, without the
// compiler's rewritten variables (input.credentialz[__local12__]).
func describeCompileError(e *ast.Error) string {
	d, ok := e.Details.(*ast.RefErrInvalidDetail)
	if e.Code != ast.TypeErr || !ok || len(d.Ref) == 0 || !d.Ref[0].Equal(ast.InputRootDocument) || d.Pos >= len(d.Ref) {
		return e.Error()
	}
	where := ""
	if e.Location != nil {
		where = fmt.Sprintf("%s:%d: ", e.Location.File, e.Location.Row)
	}
	ref := d.Ref[:d.Pos+1].String()
	parent := d.Ref[:d.Pos].String()
	if len(d.OneOf) == 0 {
		return fmt.Sprintf("%s%s: %s does not match the input schema (docs/policy-input.schema.json): %s is %s",
			where, e.Code, ref, parent, typeName(d))
	}
	members := make([]string, len(d.OneOf))
	for i, v := range d.OneOf {
		if s, ok := v.(ast.String); ok {
			members[i] = string(s)
		} else {
			members[i] = v.String()
		}
	}
	slices.Sort(members)
	return fmt.Sprintf("%s%s: %s is not in the input schema (docs/policy-input.schema.json): %s has %s",
		where, e.Code, ref, parent, strings.Join(members, ", "))
}

func typeName(d *ast.RefErrInvalidDetail) string {
	if d.Want != nil {
		return "of type " + d.Want.String()
	}
	return "not indexable"
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

// checkObjectFiles checks the CredentialPolicy files of dir (YAML or JSON): their Rego is
// parsed, checked as the cluster's objects are (package credgate.admission, deny and warn
// partial set rules) and added to modules in the object's own package, to be compiled
// strictly with the rest, located as <file>#spec.rego (its lines counted from the first line
// of spec.rego). Formatting is reported, not fixed: the text is inside YAML.
func checkObjectFiles(dir string, modules map[string]*ast.Module) []string {
	var problems []string
	for _, pattern := range []string{"*.yaml", "*.yml", "*.json"} {
		files, _ := filepath.Glob(filepath.Join(dir, pattern)) // the pattern is well formed
		slices.Sort(files)
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				problems = append(problems, fmt.Sprintf("read %s: %v", f, err))
				continue
			}
			obj, ok, err := parseObject(b, f)
			if !ok {
				continue // data
			}
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			name := f + "#spec.rego"
			m, err := ast.ParseModuleWithOpts(name, obj.Rego, parserOptions)
			if err != nil {
				problems = append(problems, err.Error())
				continue
			}
			if err := checkObjectModule(name, m); err != nil {
				problems = append(problems, err.Error())
				continue
			}
			if formatted, err := format.SourceWithOpts(name, []byte(obj.Rego), format.Opts{RegoVersion: ast.RegoV1}); err == nil && string(formatted) != obj.Rego {
				problems = append(problems, fmt.Sprintf("%s: spec.rego is not formatted as opa fmt would", f))
			}
			moveObjectModule(obj.Name, m)
			modules[name] = m
		}
	}
	return problems
}
