package policies

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// readsOf is the read set of paths, each dotted member names from the input's root.
func readsOf(paths ...string) *readSet {
	s := &readSet{}
	for _, p := range paths {
		var ref ast.Ref
		if p != "" {
			ref = stringsRef(strings.Split(p, "."))
		}
		s.add(ref)
	}
	return s
}

// paths lists the leaves of s, dotted, sorted: where it reads whole.
func (s *readSet) paths() []string {
	if s == nil {
		return nil
	}
	if s.whole {
		return []string{""}
	}
	var out []string
	for k, m := range s.members {
		for _, p := range m.paths() {
			switch {
			case p == "":
				out = append(out, k)
			case strings.HasPrefix(p, "[]"):
				out = append(out, k+p)
			default:
				out = append(out, k+"."+p)
			}
		}
	}
	if s.each != nil { // each element's, as [].name
		for _, p := range s.each.paths() {
			if p == "" {
				out = append(out, "[]")
			} else {
				out = append(out, "[]."+p)
			}
		}
	}
	slices.Sort(out)
	return out
}

func TestReadSet(t *testing.T) {
	s := readsOf("pod.spec.containers", "pod.spec", "credentials", "pod.metadata.labels", "pod.metadata.labels.team")
	if got, want := s.paths(), []string{"credentials", "pod.metadata.labels", "pod.spec"}; !slices.Equal(got, want) {
		t.Errorf("paths %q, want %q: a path below one read whole adds nothing, one above takes its place", got, want)
	}
	for path, want := range map[string]bool{
		"pod": true, "pod.spec.containers": true, "pod.metadata": true, "pod.metadata.name": false,
		"object": false, "credentials.0.name": true, "request.kind": false,
	} {
		if got := s.reaches(strings.Split(path, ".")); got != want {
			t.Errorf("reaches(%s) = %t, want %t", path, got, want)
		}
	}
	if got := union(readsOf("metadata.labels", "spec.volumes"), readsOf("metadata", "status.phase")).paths(); !slices.Equal(got, []string{"metadata", "spec.volumes", "status.phase"}) {
		t.Errorf("union: %q", got)
	}
	if !readsOf("").whole || !union(readsOf("a"), readsOf("")).whole {
		t.Error("the input read whole is not whole")
	}
}

// TestPodReads: what the built-in rules read of a Pod, which is all that EvaluateInput parses
// of its object; and what some user policies add.
func TestPodReads(t *testing.T) {
	for _, tt := range []struct {
		name, module string
		want         []string // nil: the whole object
	}{
		{"built-in only", "", append(containersRead("env", "envFrom", "name", "volumeMounts"), "spec.serviceAccountName", "spec.volumes")},
		{"the object's labels and the pod's node selector", `package credgate.admission

deny contains "x" if input.object.metadata.labels.team == "a"
deny contains "y" if object.get(input.pod, ["spec", "nodeSelector"], {}).gpu
`, append([]string{"metadata.labels.team"}, append(containersRead("env", "envFrom", "name", "volumeMounts"), "spec.nodeSelector", "spec.serviceAccountName", "spec.volumes")...)},
		{"a computed key in the spec", `package credgate.admission

deny contains "x" if input.pod.spec[concat("", ["host", "Network"])]
`, []string{"spec"}},
		{"the pod bound to a variable", `package credgate.admission

deny contains "x" if {
	p := input.pod
	p.metadata.name == "x"
}
`, nil},
		{"a with's target", `package credgate.admission

deny contains "x" if false with input.object.status.phase as "Running"
`, append(containersRead("env", "envFrom", "name", "volumeMounts"), "spec.serviceAccountName", "spec.volumes", "status.phase")},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := builtinWith(t, tt.module).podReads
			var got []string
			if r != nil {
				got = r.paths()
				if got == nil {
					got = []string{}
				}
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("podReads %q, want %q", got, tt.want)
			}
		})
	}
}

// containersRead are the paths of a read set that reads members of the containers and init
// containers, sorted as paths sorts them.
func containersRead(members ...string) []string {
	var out []string
	for _, list := range []string{"spec.containers", "spec.initContainers"} {
		for _, m := range members {
			out = append(out, list+"[]."+m)
		}
	}
	return out
}

// readsFixture is the example training pod, with a member a policy below reads in every part
// of its object, so that an input without it would decide otherwise.
func readsFixture(t *testing.T) *Input {
	t.Helper()
	return withPod(t, exampleInput(t), func(pod *corev1.Pod) {
		pod.Annotations = map[string]string{"team": "a", "note": "mallory-marker"}
		pod.GenerateName = "trainer-"
		pod.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "mallory", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "v1"}}
		pod.Spec.NodeSelector = map[string]string{"gpu": "a100"}
		pod.Spec.Containers[0].ImagePullPolicy = corev1.PullAlways
		pod.Status.Phase = corev1.PodPending
	})
}

// withPod is in with its object, a Pod, changed by change.
func withPod(t *testing.T, in *Input, change func(*corev1.Pod)) *Input {
	t.Helper()
	var pod corev1.Pod
	if err := json.Unmarshal(in.Object, &pod); err != nil {
		t.Fatal(err)
	}
	change(&pod)
	raw, err := json.Marshal(&pod)
	if err != nil {
		t.Fatal(err)
	}
	in.Object = raw
	return in
}

// TestEvaluateInputDecidesTheSame: an input parsed only as far as the revision's policies may
// read it decides exactly as the whole input, for policies that read every part of the object
// in every way a ref can: each denies on the fixture given the whole input, so that a read
// set that missed what it reads would change the result.
func TestEvaluateInputDecidesTheSame(t *testing.T) {
	const deny = `deny contains {"rule": "t", "credential": "", "message": "m"} if `
	for _, tt := range []struct{ name, rules string }{
		{"an annotation", deny + `input.pod.metadata.annotations.team == "a"`},
		{"the object's name and kind", deny + `{
	input.object.kind == "Pod"
	startswith(input.object.metadata.generateName, "trainer-")
}`},
		{"object.get of a path", deny + `object.get(input.object, ["metadata", "annotations", "team"], "") == "a"`},
		{"object.get of a key, then a ref", deny + `object.get(input, "object", {}).status.phase == "Pending"`},
		{"the pod bound to a variable", deny + `{
	p := input.pod
	p.spec.nodeSelector.gpu == "a100"
}`},
		{"an import", "import input.pod.spec as s\n\n" + deny + `s.nodeSelector.gpu == "a100"`},
		{"an import of the input", "import input as i\n\n" + deny + `i.object.status.phase == "Pending"`},
		{"walk", deny + `{
	walk(input, [_, v])
	v == "mallory-marker"
}`},
		{"a computed key", deny + `{
	k := concat("", ["anno", "tations"])
	input.pod.metadata[k].team == "a"
}`},
		{"a number index", deny + `input.object.spec.containers[0].imagePullPolicy == "Always"`},
		{"a function of the pod", "bad(p) if p.metadata.annotations.team == \"a\"\n\n" + deny + `bad(input.pod)`},
		{"a rule head's ref", "seen[input.pod.metadata.managedFields[_].manager] contains \"x\"\n\n" + deny + `seen.mallory`},
		{"a rule that reads, used elsewhere", "phase := input.object.status.phase\n\n" + deny + `phase == "Pending"`},
		{"a with on object.get", deny + `{
	object.get(input, ["pod", "spec", "zz"], 0, n) with input.pod.spec.zz as count([1 | input.pod.metadata.managedFields[_].manager == "mallory"])
	n > 0
}`},
		{"the members counted", deny + `count(input.object.metadata) > 5`},
		{"every", deny + `every c in input.pod.spec.containers { c.image != "" }`},
		{"absent where a with adds it", deny + `{
	input.object.metadata.name == "x" with input.object.metadata.name as "x"
	input.object.metadata.annotations.team == "a"
}`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			decidesTheSame(t, builtinWith(t, "package credgate.admission\n\n"+tt.rules+"\n"), readsFixture(t), "t")
		})
	}
}

// decidesTheSame checks that rev decides in, parsed as far as rev reads it, as it decides the
// whole input, where rule denies.
func decidesTheSame(t *testing.T, rev *Revision, in *Input, rule string) {
	t.Helper()
	full, err := in.Value()
	if err != nil {
		t.Fatal(err)
	}
	want, err := rev.Evaluate(t.Context(), full)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(want.Deny, func(v Violation) bool { return v.Rule == rule }) {
		t.Fatalf("the policy does not deny the whole input: %+v", want.Deny)
	}
	got, err := NewEngine(rev).EvaluateInput(t.Context(), in)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("EvaluateInput = %+v\nwant %+v (the whole input)", got, want)
	}
}

// TestEvaluateInputObjectGetShadowed: object.get reads only its path when it is OPA's built-in;
// a module may make the name mean something else — found by an attacker's review, each of
// these admitted the pod its policy refuses.
func TestEvaluateInputObjectGetShadowed(t *testing.T) {
	const deny = `deny contains {"rule": "t", "credential": "", "message": "m"} if `
	for _, tt := range []struct {
		name    string
		modules map[string]string
	}{
		{"a with replacing it", map[string]string{"user/p.rego": "package credgate.admission\n\nident(o, _, _) := o\n\nmeta := object.get(input.object, \"metadata\", {})\n\n" + deny + `{
	m := meta with object.get as ident
	m.status.phase == "Pending"
}`}},
		{"a with replacing it, from another package", map[string]string{
			"user/lib.rego": "package lib3\n\nid(o, _, _) := o\n\nphase := object.get(input.pod, \"spec\", {}).status.phase\n",
			"user/p.rego":   "package credgate.admission\n\n" + deny + `data.lib3.phase == "Pending" with object.get as data.lib3.id`}},
		{"a function of that name", map[string]string{"user/p.rego": "package credgate.admission\n\nobject.get(o, _, _) := o\n\n" + deny +
			`object.get(input.object, "metadata", {}).status.phase == "Pending"`}},
		{"an import of that name", map[string]string{
			"user/lib.rego": "package lib2\n\nget(o, _, _) := o\n",
			"user/p.rego":   "package credgate.admission\n\nimport data.lib2 as object\n\n" + deny + `object.get(input.object, "metadata", {}).status.phase == "Pending"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			src, err := Merge(Builtin(), Source{Modules: tt.modules})
			if err != nil {
				t.Fatal(err)
			}
			rev, err := Compile(t.Context(), src)
			if err != nil {
				t.Fatal(err)
			}
			decidesTheSame(t, rev, readsFixture(t), "t")
		})
	}
	t.Run("in a policy object", func(t *testing.T) {
		rev := compileObjectsOf(t, Object{Name: "tenant", Rego: "package credgate.admission\n\nobject.get(o, _, _) := o\n\n" + deny +
			`object.get(input.object, "metadata", {}).status.phase == "Pending"` + "\n"})
		decidesTheSame(t, rev, readsFixture(t), "t")
	})
	t.Run("reading managed fields", func(t *testing.T) {
		if !builtinWith(t, "package credgate.admission\n\nobject.get(o, _, _) := o\n\n"+deny+`{
	m := object.get(input.object, "status", {})
	m.metadata.managedFields[_].manager == "mallory"
}`).ReadsManagedFields() {
			t.Error("ReadsManagedFields() = false for a policy reading them through its own object.get")
		}
	})
}

// TestEvaluateInputNamespaceSelector: a policy object's namespaceSelector is matched by
// credgate on input.namespace.labels, which the input holds whatever the policies read.
func TestEvaluateInputNamespaceSelector(t *testing.T) {
	rev := compileObjectsOf(t, Object{Name: "prod-only", Rego: `package credgate.admission

deny contains {"rule": "t", "message": "alice may not run pods"} if input.request.userInfo.username == "alice"
`, NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}})
	if !inputReads(nil, nil).reaches([]string{"namespace", "labels"}) {
		t.Error("modules that read nothing: the input holds no namespace labels")
	}
	in := readsFixture(t)
	in.User, in.NamespaceLabels = "alice", map[string]string{"env": "prod"}
	decidesTheSame(t, rev, in, "t")
}

// TestParseJSONReadsStrict: a member skipped is refused exactly when it would be parsed, with
// the same error.
func TestParseJSONReadsStrict(t *testing.T) {
	reads := readsOf("a.b", "\u00e9", "k")
	deep := strings.Repeat("[", maxDepth+1)
	for _, doc := range []string{
		`{"a":{"b":1,"c":2},"a":{"c":3}}`, `{"\u0061":{"b":1},"z":{"b":2}}`, `{"k":1,"k":{"x":[1,2]},"q":"\u00zz"}`,
		`{"q":"` + "\x01" + `","a":1}`, `{"q":"` + "\xff" + `","k":"` + "\xfe" + `"}`,
		`{"q":01}`, `{"q":1.}`, `{"q":-}`, `{"q":tru}`, `{"q":[1,]}`, `{"q":{"a":1,}}`, `{"q":{}} x`,
		`{"q":` + deep + `}`, `{"k":` + deep + `}`, `{"é":1,"e\u0301":2}`, `{"q":"\ud800"}`, `{"a":{"b":{"c":1}},"a":null}`,
		`{"q":1e999999}`, `{"k":1e999999}`, `{"k":-0.0}`, `{"q":"abc\`,
	} {
		want, werr := parseJSON([]byte(doc))
		got, gerr := parseJSONReads([]byte(doc), reads)
		if (werr == nil) != (gerr == nil) || werr != nil && werr.Error() != gerr.Error() {
			t.Errorf("%.60q: error %v, want %v", doc, gerr, werr)
			continue
		}
		if werr == nil && project(want, reads).Compare(got) != 0 {
			t.Errorf("%.60q: %v, want %v", doc, got, project(want, reads))
		}
	}
}

// TestEvaluateInputRefusesWhatValueRefuses: an object whose whole input does not parse (a
// number out of OPA's range in a member no policy reads) is refused every time, never decided.
func TestEvaluateInputRefusesWhatValueRefuses(t *testing.T) {
	in := readsFixture(t)
	in.Object = append(in.Object[:len(in.Object)-1], []byte(`,"zz":1e999999}`)...)
	if _, err := in.Value(); err == nil {
		t.Fatal("the whole input parses")
	}
	e := NewEngine(builtinWith(t, ""))
	for i := range 2 { // the first is claimed by the canary, the second is not
		if _, err := e.EvaluateInput(t.Context(), in); err == nil {
			t.Errorf("EvaluateInput #%d decided an input whose object does not parse", i+1)
		}
	}
}

// TestEvaluateInputParsesWhatIsRead: the built-in rules see a Pod's object without what they
// cannot read; the canary keeps the whole input all the same.
func TestEvaluateInputParsesWhatIsRead(t *testing.T) {
	in := readsFixture(t)
	e := NewEngine(builtinWith(t, ""))
	value, err := in.value(e.Current().reads, e.Current().podReads)
	if err != nil {
		t.Fatal(err)
	}
	doc := value.(ast.Object)
	if o := doc.Get(ast.StringTerm("object")); o != nil {
		t.Errorf("the input has an object; no built-in rule reads it")
	}
	pod := doc.Get(ast.StringTerm("pod")).Value.(ast.Object)
	if keys := pod.Keys(); len(keys) != 1 || keys[0].Value.Compare(ast.String("spec")) != 0 {
		t.Errorf("input.pod has %v; the built-in rules read its spec alone", keys)
	}
	if got, want := ast.NewSet(doc.Get(ast.StringTerm("request")).Value.(ast.Object).Keys()...).String(), `{"namespace"}`; got != want {
		t.Errorf("input.request has %s, want %s: what the built-in rules read", got, want)
	}
	if _, err := e.EvaluateInput(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	recent := e.RecentInputs()
	full, err := in.Value()
	if err != nil {
		t.Fatal(err)
	}
	if len(recent) != 1 || recent[0].Compare(full) != 0 {
		t.Errorf("the canary kept %d inputs, not the whole input", len(recent))
	}
}
