package policies

import (
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Rule is one rule a revision serves, as `credgate policy list` shows it. A built-in rule is
// a package under credgate.builtin, described by the package's # METADATA annotation (title,
// description, custom.id, custom.enforcement). A user rule is a deny or warn rule of
// credgate.admission, described by the # METADATA annotation just above it, if any.
type Rule struct {
	// ID is the rule id its violations carry: custom.id of its annotation, or, for a user rule
	// without one, the id its head states literally (lib.violation("id", ...) or
	// {"rule": "id", ...}); empty when neither says.
	ID string `json:"id,omitempty"`
	// Sets are the sets it adds to: "deny", "warn".
	Sets []string `json:"sets"`
	// Enforcement is its action unless configured otherwise: custom.enforcement, else the
	// first of its sets.
	Enforcement string `json:"enforcement"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description,omitempty"`
	// File and Line locate it: a built-in rule's package declaration, a user rule's first
	// definition.
	File    string `json:"file"`
	Line    int    `json:"line"`
	Package string `json:"package"`
	Builtin bool   `json:"builtin"`
}

// Name is how a rule is called in listings: its id, else its Rego rule (data.credgate.admission.deny).
func (r Rule) Name() string {
	if r.ID != "" {
		return r.ID
	}
	return "data." + r.Package + "." + strings.Join(r.Sets, ",")
}

// rules lists the rules of modules (parsed, with their annotations): the built-in ones by
// package, sorted by id, then the user ones by file and line.
func rules(modules map[string]*ast.Module) []Rule {
	names := make([]string, 0, len(modules))
	for n := range modules {
		names = append(names, n)
	}
	slices.Sort(names)
	builtins := map[string]*Rule{}
	var user []*Rule
	userByID := map[string]*Rule{} // file and id
	for _, name := range names {
		m := modules[name]
		pkg := packageName(m)
		switch {
		case strings.HasPrefix(pkg, BuiltinPackage+"."):
			r := builtins[pkg]
			if r == nil {
				r = &Rule{Package: pkg, Builtin: true, File: name, Line: line(m.Package.Location)}
				builtins[pkg] = r
			}
			for _, a := range m.Annotations {
				if a.Scope == "package" {
					r.File, r.Line = name, line(m.Package.Location)
					describe(r, a)
				}
			}
			for _, rule := range m.Rules {
				if set := setOf(rule); set != "" && !slices.Contains(r.Sets, set) {
					r.Sets = append(r.Sets, set)
				}
			}
		case pkg == EntryPackage:
			for _, rule := range m.Rules {
				set := setOf(rule)
				if set == "" {
					continue
				}
				r := &Rule{Package: pkg, File: name, Line: line(rule.Location), Sets: []string{set}}
				for _, a := range rule.Annotations {
					if a.Scope == "rule" {
						describe(r, a)
					}
				}
				if r.ID == "" {
					r.ID = literalID(rule)
				}
				if r.ID != "" {
					key := name + "\x00" + r.ID
					if prev, ok := userByID[key]; ok {
						merge(prev, r)
						continue
					}
					userByID[key] = r
				}
				user = append(user, r)
			}
		}
	}
	out := make([]Rule, 0, len(builtins)+len(user))
	for _, r := range builtins {
		if len(r.Sets) == 0 {
			continue // a package of helpers
		}
		out = append(out, *r)
	}
	slices.SortFunc(out, func(a, b Rule) int { return strings.Compare(a.Name(), b.Name()) })
	for _, r := range user {
		out = append(out, *r)
	}
	for i := range out {
		if out[i].Enforcement == "" {
			out[i].Enforcement = out[i].Sets[0]
		}
	}
	return out
}

// describe fills r from annotation a.
func describe(r *Rule, a *ast.Annotations) {
	r.Title, r.Description = a.Title, strings.TrimSpace(a.Description)
	if id, ok := a.Custom["id"].(string); ok {
		r.ID = id
	}
	if e, ok := a.Custom["enforcement"].(string); ok {
		r.Enforcement = e
	}
}

// merge adds the sets and description of r to prev, the same rule defined again.
func merge(prev, r *Rule) {
	for _, s := range r.Sets {
		if !slices.Contains(prev.Sets, s) {
			prev.Sets = append(prev.Sets, s)
		}
	}
	if prev.Title == "" {
		prev.Title = r.Title
	}
	if prev.Description == "" {
		prev.Description = r.Description
	}
	if prev.Enforcement == "" {
		prev.Enforcement = r.Enforcement
	}
}

// setOf is "deny" or "warn" for a rule defining (part of) that set, "" for any other rule.
func setOf(rule *ast.Rule) string {
	if len(rule.Head.Args) > 0 {
		return ""
	}
	switch v, _ := rule.Head.Ref()[0].Value.(ast.Var); v {
	case "deny", "warn":
		return string(v)
	}
	return ""
}

// literalID is the rule id a deny or warn rule's head states as a literal string: the first
// argument of a call to a function named violation, or the "rule" of an object.
func literalID(rule *ast.Rule) string {
	key := rule.Head.Key
	if key == nil {
		key = rule.Head.Value
	}
	if key == nil {
		return ""
	}
	switch v := key.Value.(type) {
	case ast.Call:
		if len(v) < 2 {
			return ""
		}
		if op, ok := v[0].Value.(ast.Ref); !ok || op[len(op)-1].String() != `"violation"` && op[len(op)-1].String() != "violation" {
			return ""
		}
		s, _ := v[1].Value.(ast.String)
		return string(s)
	case ast.Object:
		if t := v.Get(ast.StringTerm("rule")); t != nil {
			s, _ := t.Value.(ast.String)
			return string(s)
		}
	}
	return ""
}

func line(loc *ast.Location) int {
	if loc == nil {
		return 0
	}
	return loc.Row
}
