package policies_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/credgate/credgate/policies"
)

// TestBuiltinRulesMetadata: every built-in rule is a package under credgate.builtin named
// after its id, with a # METADATA annotation giving its id, title, description and default
// enforcement (one of the sets it adds to); the ids are those the rules' violations carry, and
// those docs/policies.md lists.
func TestBuiltinRulesMetadata(t *testing.T) {
	rev, err := policies.Compile(t.Context(), policies.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]policies.Rule{}
	for _, r := range rev.Rules() {
		if !r.Builtin {
			t.Errorf("user rule %+v among the built-ins", r)
			continue
		}
		if r.ID == "" || r.Title == "" || r.Description == "" {
			t.Errorf("%s (%s): id %q, title %q, description %q; want all three", r.Package, r.File, r.ID, r.Title, r.Description)
		}
		if want := "credgate.builtin." + strings.ReplaceAll(r.ID, "-", "_"); r.Package != want {
			t.Errorf("rule %s is in package %s, want %s", r.ID, r.Package, want)
		}
		if !slices.Contains(r.Sets, r.Enforcement) {
			t.Errorf("rule %s: enforcement %q is none of its sets %v", r.ID, r.Enforcement, r.Sets)
		}
		if want := "builtin/" + strings.ReplaceAll(r.ID, "-", "_") + ".rego"; r.File != want || r.Line == 0 {
			t.Errorf("rule %s from %s:%d, want %s", r.ID, r.File, r.Line, want)
		}
		if _, dup := listed[r.ID]; dup {
			t.Errorf("rule id %s listed twice", r.ID)
		}
		listed[r.ID] = r
	}
	// Every violation the built-ins give on the samples carries a listed id, from a set the
	// listing names.
	for _, s := range policies.SampleInputs() {
		res, err := rev.Evaluate(t.Context(), s.Value)
		if err != nil {
			t.Fatal(err)
		}
		for set, vs := range map[string][]policies.Violation{"deny": res.Deny, "warn": res.Warn} {
			for _, v := range vs {
				if r, ok := listed[v.Rule]; !ok || !slices.Contains(r.Sets, set) {
					t.Errorf("%s: %s violation of %s, which the listing lacks (%+v)", s.Name, set, v.Rule, r)
				}
			}
		}
	}
	doc, err := os.ReadFile("../docs/policies.md")
	if err != nil {
		t.Fatal(err)
	}
	table := regexp.MustCompile("(?m)^\\| `([a-z-]+)` \\| (deny|warn)")
	var documented []string
	for _, m := range table.FindAllStringSubmatch(string(doc), -1) {
		documented = append(documented, m[1])
	}
	slices.Sort(documented)
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range listed {
			if !yield(id) {
				return
			}
		}
	})
	if !slices.Equal(documented, ids) {
		t.Errorf("docs/policies.md lists built-in rules %v, the metadata %v", documented, ids)
	}
}

// TestRulesListUserRules: a user rule is listed by its annotation; without one, by the id its
// head states literally; without either, by its file, line and Rego rule. Definitions of one id
// in one file are one rule.
func TestRulesListUserRules(t *testing.T) {
	const annotated = `package credgate.admission

import data.credgate.lib

# METADATA
# title: No GPUs for interns
# description: Interns may not request GPUs.
# custom:
#   id: intern-gpu
#   enforcement: deny
deny contains lib.violation("intern-gpu", "", "no GPUs") if input.request.userInfo.username == "intern"

deny contains lib.violation("intern-gpu", "", "no GPUs, really") if input.request.userInfo.username == "intern2"

warn contains {"rule": "no-owner", "credential": "", "message": "label your pod's owner"} if not input.pod.metadata.labels.owner
`
	const bare = `package credgate.admission

warn contains "set a team label" if not input.pod.metadata.labels.team

helper := 1
`
	const other = `package acme

deny contains "not served" if true
`
	src, err := policies.Merge(policies.Builtin(), policies.Source{Modules: map[string]string{
		"user/annotated.rego": annotated, "user/bare.rego": bare, "user/acme.rego": other}})
	if err != nil {
		t.Fatal(err)
	}
	rev, err := policies.Compile(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	var user []policies.Rule
	for _, r := range rev.Rules() {
		if !r.Builtin {
			user = append(user, r)
		}
	}
	want := []policies.Rule{
		{ID: "intern-gpu", Sets: []string{"deny"}, Enforcement: "deny", Title: "No GPUs for interns", Description: "Interns may not request GPUs.",
			File: "user/annotated.rego", Line: 11, Package: "credgate.admission"},
		{ID: "no-owner", Sets: []string{"warn"}, Enforcement: "warn", File: "user/annotated.rego", Line: 15, Package: "credgate.admission"},
		{Sets: []string{"warn"}, Enforcement: "warn", File: "user/bare.rego", Line: 3, Package: "credgate.admission"},
	}
	if len(user) != len(want) {
		t.Fatalf("user rules %+v, want %+v", user, want)
	}
	for i := range want {
		if g, w := user[i], want[i]; g.ID != w.ID || !slices.Equal(g.Sets, w.Sets) || g.Enforcement != w.Enforcement || g.Title != w.Title ||
			g.Description != w.Description || g.File != w.File || g.Line != w.Line || g.Package != w.Package {
			t.Errorf("user rule %d = %+v, want %+v", i, g, w)
		}
	}
	if got := user[2].Name(); got != "data.credgate.admission.warn" {
		t.Errorf("a rule without metadata is named %q, want its Rego rule", got)
	}
}
