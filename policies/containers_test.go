package policies

import (
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// containersFixture is readsFixture with a second container named trainer, as a tenant may
// submit it (the API server refuses the duplicate name only after mutating admission): the
// same name, variables and mounts as the first, another image and eight GPUs. Trimmed to what
// the built-in rules read, the two are one element of lib.target_containers.
func containersFixture(t *testing.T) *Input {
	t.Helper()
	return withPod(t, readsFixture(t), func(pod *corev1.Pod) {
		evil := *pod.Spec.Containers[0].DeepCopy()
		if evil.Name != "trainer" {
			t.Fatalf("the first container is %s", evil.Name)
		}
		evil.Image = "mallory/evil:1"
		evil.Resources.Limits = corev1.ResourceList{"nvidia.com/gpu": resource.MustParse("8")}
		pod.Spec.Containers = append(pod.Spec.Containers, evil)
	})
}

// TestContainerReads: a policy reading a member of a target container through
// lib.target_containers gets it, however it names it; one that may read more of a container, or
// count the set's iterations, gets the containers whole. Each policy denies on the fixture given
// the whole input, so that a narrowing that missed what it reads would admit the pod.
func TestContainerReads(t *testing.T) {
	const deny = "import data.credgate.lib\n\n" + `deny contains {"rule": "t", "credential": "", "message": "m"} if `
	const evil = `"mallory/evil:1"`
	for _, tt := range []struct {
		name, rules string
		whole       bool     // the containers read whole
		members     []string // else the members read of each (besides the built-in rules')
	}{
		{"a member", deny + `{
	some c in lib.target_containers
	c.image == ` + evil + `
}`, false, []string{"image"}},
		{"a key and a member", deny + `{
	some i, c in lib.target_containers
	c.image == ` + evil + `
}`, false, []string{"image"}},
		{"object.get of a member", deny + `{
	some c in lib.target_containers
	object.get(c, "image", "") == ` + evil + `
}`, false, []string{"image"}},
		{"object.get of a path", deny + `{
	some c in lib.target_containers
	object.get(c, ["resources", "limits", "nvidia.com/gpu"], "0") == "8"
}`, false, []string{"resources"}},
		{"an import of the rule", "import data.credgate.lib.target_containers as tc\n\n" + deny + `{
	some c in tc
	c.image == ` + evil + `
}`, false, []string{"image"}},
		{"an object comprehension", deny + `{c.name: c.image | some c in lib.target_containers; c.image == ` + evil + `}.trainer == ` + evil,
			false, []string{"image"}},
		{"a member bound, then read", deny + `{
	some c in lib.target_containers
	r := c.resources
	r.limits["nvidia.com/gpu"] == "8"
}`, false, []string{"resources"}},

		{"object.get of an empty path", deny + `{
	some c in lib.target_containers
	object.get(c, [], {}).image == ` + evil + `
}`, true, nil},
		{"object.get replaced by a with", "images contains object.get(c, \"image\", \"\") if some c in lib.target_containers\n\nident(o, _, _) := o\n\n" + deny + `{
	some c in images with object.get as ident
	c.resources.limits["nvidia.com/gpu"] == "8"
}`, true, nil},
		{"the iterations counted", deny + `count([1 | some c in lib.target_containers]) == 3`, true, nil},
		{"the iterations counted, a member read", deny + `count([c.name | some c in lib.target_containers]) == 3`, true, nil},
		{"the container passed to a function", "evil(c) if c.image == " + evil + "\n\n" + deny + `{
	some c in lib.target_containers
	evil(c)
}`, true, nil},
		{"the container's members iterated", deny + `{
	some c in lib.target_containers
	some k, v in c
	k == "image"
	v == ` + evil + `
}`, true, nil},
		{"object.get of a computed key", deny + `{
	k := concat("", ["im", "age"])
	some c in lib.target_containers
	object.get(c, k, "") == ` + evil + `
}`, true, nil},
		{"the container compared whole", deny + `{
	some c in lib.target_containers
	some d in lib.target_containers
	c != d
	c.name == d.name
}`, true, nil},
		{"the key read", deny + `{
	some i, c in lib.target_containers
	i.image == ` + evil + `
}`, true, nil},
		{"the set bound", deny + `{
	cs := lib.target_containers
	some c in cs
	c.image == ` + evil + `
}`, true, nil},
		{"every", "fine if every c in lib.target_containers { c.image != " + evil + " }\n\n" + deny + `not fine`, true, nil},
		{"the library by a computed key", deny + `{
	some name, v in data.credgate.lib
	name == "target_containers"
	some c in v
	c.image == ` + evil + `
}`, true, nil},
		{"walk", deny + `{
	walk(data.credgate.lib, [_, v])
	v == ` + evil + `
}`, true, nil},
		{"the library passed", "find(l) if { some c in l.target_containers; c.image == " + evil + " }\n\n" + deny + `find(data.credgate.lib)`, true, nil},
		{"in a set of sets", deny + `{
	some c in {x | some x in lib.target_containers}
	c.image == ` + evil + `
}`, true, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rev := builtinWith(t, "package credgate.admission\n\n"+tt.rules+"\n")
			got := rev.podReads.paths()
			if tt.whole {
				for _, list := range containerPaths {
					if !readWhole(rev.podReads, list...) {
						t.Errorf("podReads %q: %s not whole", got, strings.Join(list, "."))
					}
				}
			} else {
				for _, p := range containersRead(append([]string{"env", "envFrom", "name", "volumeMounts"}, tt.members...)...) {
					if !slices.Contains(got, p) {
						t.Errorf("podReads %q, want %q among them", got, p)
					}
				}
			}
			decidesTheSame(t, rev, containersFixture(t), "t")
		})
	}
}

// TestMayReach: a ref to a document that holds lib.target_containers, or with a key computed
// there, may reach it (data.credgate and data themselves, which a policy cannot pass from
// package credgate.admission without recursion, included).
func TestMayReach(t *testing.T) {
	for ref, want := range map[string]bool{
		"data": true, "data.credgate": true, "data.credgate.lib": true, "data.credgate.lib.target_containers": true,
		"data.credgate.lib.target_containers[x]": true, "data[x].lib": true, "data.credgate[x]": true, "data.credgate.lib[x]": true,
		"data.credgate.builtin": false, "data.credgate.lib.credential_env[x]": false, "data.other[x]": false, `data.credgate.lib["target_containers"]`: true,
	} {
		if got := mayReach(ast.MustParseRef(ref), targetContainers); got != want {
			t.Errorf("mayReach(%s) = %t, want %t", ref, got, want)
		}
	}
}

// TestContainerReadsOfTheRule: the narrowing holds only for lib.target_containers as credgate
// writes it.
func TestContainerReadsOfTheRule(t *testing.T) {
	if containerDomains(parsedBuiltin(t)) == nil {
		t.Fatal("the built-in lib.target_containers is not recognised")
	}
	for name, src := range map[string]string{
		"another body": `target_containers contains c if { some c in input.pod.spec.containers; c.image != "" }`,
		"a third rule": `target_containers contains c if { some c in input.pod.spec.ephemeralContainers; c.name in input.targets }`,
	} {
		t.Run(name, func(t *testing.T) {
			modules := parsedBuiltin(t)
			m := modules["builtin/lib.rego"]
			extra := parseModule(t, "package credgate.lib\n\n"+src+"\n")
			m.Rules = append(m.Rules, extra.Rules...)
			if containerDomains(modules) != nil {
				t.Error("a lib.target_containers with a rule of its own is narrowed")
			}
		})
	}
}

// readWhole reports whether s reads the value at path whole (a nil s reads all).
func readWhole(s *readSet, path ...string) bool {
	for _, p := range path {
		if s == nil || s.whole {
			return true
		}
		if s = s.members[p]; s == nil {
			return false
		}
	}
	return s == nil || s.whole
}

// parsedBuiltin is the built-in modules, parsed.
func parsedBuiltin(t *testing.T) map[string]*ast.Module {
	t.Helper()
	modules := map[string]*ast.Module{}
	for file, src := range Builtin().Modules {
		modules[file] = parseModule(t, src)
	}
	return modules
}

func parseModule(t *testing.T, src string) *ast.Module {
	t.Helper()
	m, err := ast.ParseModuleWithOpts("x.rego", src, parserOptions)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
