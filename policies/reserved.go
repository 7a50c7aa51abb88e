package policies

import (
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The packages credgate owns. User policies declare EntryPackage (or packages below it), or
// packages of their own outside ReservedRoot; every other package under ReservedRoot is
// reserved, and so is the data under it.
const (
	// ReservedRoot is credgate's namespace, in packages and in data.
	ReservedRoot = "credgate"
	// EntryPackage is where user policies add to deny and warn.
	EntryPackage = "credgate.admission"
	// BuiltinPackage holds the built-in rules, one package below it per rule
	// (credgate.builtin.static_credentials), with their internal helpers.
	BuiltinPackage = "credgate.builtin"
	// LibPackage holds the helpers user policies may import (credgate.lib, credgate.lib.iam).
	LibPackage = "credgate.lib"
	// TestPackage holds the fixtures of Rego tests (credgate.test), which tests may import.
	TestPackage = "credgate.test"
)

// ReservedError refuses a user file that would define part of credgate's own packages or data:
// a module extending a built-in helper, or clashing with a built-in rule, would only fail at
// evaluation — every admission an error — so it is refused as it loads.
type ReservedError struct {
	// File and Line locate the package declaration (Line 0 for a data file).
	File string
	Line int
	// Package is the package declared, or "data.credgate" for a data file.
	Package string
}

func (e *ReservedError) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: defines data.%s, which is reserved for credgate: put your data under a key of your own",
			e.File, ReservedRoot)
	}
	return fmt.Sprintf("%s:%d: package %s is reserved for credgate (%s: built-in rules, %s: helpers to import, %s: test fixtures); declare package %s, or a package of your own outside %s",
		e.File, e.Line, e.Package, BuiltinPackage, LibPackage, TestPackage, EntryPackage, ReservedRoot)
}

// userPackageAllowed says whether a user file may declare package pkg ("a.b.c"): anything
// outside credgate; under it only the entry point and below, and, for a test file, a test
// package of its own (credgate.admission_test, credgate.prod_test) outside the reserved ones.
func userPackageAllowed(pkg string, test bool) bool {
	if pkg != ReservedRoot && !strings.HasPrefix(pkg, ReservedRoot+".") {
		return true
	}
	if under(pkg, EntryPackage) {
		return true
	}
	if !test {
		return false
	}
	first, _, _ := strings.Cut(strings.TrimPrefix(pkg, ReservedRoot+"."), ".")
	return strings.HasSuffix(first, "_test") && first != "builtin_test" // the built-in rules' tests
}

// under says whether package pkg is p or lies below it.
func under(pkg, p string) bool { return pkg == p || strings.HasPrefix(pkg, p+".") }

// packageName is m's package as "a.b.c" (without data.), from the terms of its path, however
// it was written: package credgate["x-y"] is "credgate.x-y", under credgate like any other.
func packageName(m *ast.Module) string {
	parts := make([]string, 0, len(m.Package.Path))
	for _, t := range m.Package.Path[1:] {
		if s, ok := t.Value.(ast.String); ok {
			parts = append(parts, string(s))
		} else {
			parts = append(parts, t.String())
		}
	}
	return strings.Join(parts, ".")
}

// checkUserModule refuses user module m (of file name) if it declares a reserved package.
func checkUserModule(name string, m *ast.Module, test bool) error {
	pkg := packageName(m)
	if userPackageAllowed(pkg, test) {
		return nil
	}
	line := 1
	if loc := m.Package.Location; loc != nil {
		line = loc.Row
	}
	return &ReservedError{File: name, Line: line, Package: pkg}
}

// checkUserData refuses the data of user file name if it has the top-level key credgate.
func checkUserData(name string, doc map[string]any) error {
	if _, ok := doc[ReservedRoot]; ok {
		return &ReservedError{File: name, Package: "data." + ReservedRoot}
	}
	return nil
}

// isBuiltin says whether module name of text is one of credgate's own embedded files: by
// name and content, so that no user file passes for one.
func isBuiltin(name, text string) bool {
	b, ok := builtinFiles()[name]
	return ok && b == text
}
