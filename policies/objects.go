package policies

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"

	"github.com/credgate/credgate/api/v1alpha1"
)

// Object is a policy served from a Kubernetes object (a CredentialPolicy): one Rego module of
// package credgate.admission, the enforcement of its rules and the namespaces it applies to.
// It is compiled into a package of its own (ObjectPackage.<name>), so that each violation is
// known to come from it: Violation.Policy names it, its enforcement decides the violation's
// action, and its namespace selector drops the violations of pods in other namespaces.
type Object struct {
	Name string `json:"name"`
	// UID and Generation identify the object's version (not part of the revision).
	UID        string `json:"-"`
	Generation int64  `json:"-"`
	Rego       string `json:"-"` // in Source.Modules, as ObjectFile(Name)
	// Enforcement maps rule ids of its violations to actions.
	Enforcement map[string]Action `json:"enforcement,omitempty"`
	// NamespaceSelector, when set, restricts it to the namespaces whose labels it selects.
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// Fallback, when set, is an older generation of it a replica served (its status says so):
	// served while this one fails, as the Watcher serves the generation it served itself.
	Fallback *Object `json:"-"`
}

// ObjectPackage is where the module of each Object is compiled: ObjectPackage["<name>"].
// Reserved: a policy file cannot declare it.
const ObjectPackage = ReservedRoot + ".object"

// objectPrefix starts the file names of Objects' modules: policy/<name>.rego.
const objectPrefix = "policy/"

// ObjectFile is the file name of the module of the Object named name, as errors and listings
// show it.
func ObjectFile(name string) string { return objectPrefix + name + ".rego" }

// ObjectsSource returns the Source of objs: their modules and what else each declares.
func ObjectsSource(objs []Object) Source {
	s := Source{Modules: map[string]string{}, Tests: map[string]string{}, Data: map[string]any{},
		Objects: make(map[string]Object, len(objs))}
	for _, o := range objs {
		_ = s.addObject(o, "") // names are unique: they are the objects' names
	}
	return s
}

// compiledObject is what a Revision keeps of an Object to classify its violations.
type compiledObject struct {
	selector    labels.Selector // nil: every namespace
	enforcement map[string]Action
	// query reads its deny and warn sets; queried is false when it defines neither.
	query   rego.PreparedEvalQuery
	queried bool
}

// compileObjects checks each object of src and returns what evaluation needs of them. A
// selector that does not parse, or an action that is not one, is an error naming the object's
// file, which the Watcher blames on it.
func compileObjects(src Source) (map[string]compiledObject, error) {
	if len(src.Objects) == 0 {
		return nil, nil
	}
	out := make(map[string]compiledObject, len(src.Objects))
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(src.Objects)) {
		o := src.Objects[name]
		var c compiledObject
		if o.NamespaceSelector != nil {
			sel, err := metav1.LabelSelectorAsSelector(o.NamespaceSelector)
			if err != nil {
				errs = append(errs, &objectError{File: ObjectFile(name), Spec: true, Msg: "namespaceSelector: " + err.Error()})
				continue
			}
			c.selector = sel
		}
		for _, rule := range slices.Sorted(maps.Keys(o.Enforcement)) {
			if a := o.Enforcement[rule]; a != ActionDeny && a != ActionWarn && a != ActionAudit {
				errs = append(errs, &objectError{File: ObjectFile(name), Spec: true,
					Msg: fmt.Sprintf("enforcement of %s is %q: the action must be deny, warn or audit", rule, a)})
			}
		}
		c.enforcement = o.Enforcement
		out[name] = c
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// objectError is an error credgate finds in a policy object, located in its module's file.
type objectError struct {
	File string
	Line int // 0: a field other than the Rego
	Msg  string
	// Spec: the error is in a field other than the Rego (the selector, the enforcement).
	Spec bool
}

func (e *objectError) Error() string {
	if e.Line == 0 {
		return e.File + ": " + e.Msg
	}
	return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
}

// checkObjectModule refuses the module of an Object unless it declares package
// credgate.admission and its deny and warn are partial set rules (deny contains v if ...): a
// complete rule, or a default, would be undefined or of the wrong type in the query, and fail
// the whole revision rather than the object.
func checkObjectModule(file string, m *ast.Module) error {
	if pkg := packageName(m); pkg != EntryPackage {
		return &objectError{File: file, Line: line(m.Package.Location),
			Msg: fmt.Sprintf("a CredentialPolicy declares package %s, not %s", EntryPackage, pkg)}
	}
	sets := 0
	for _, r := range m.Rules {
		set := setOf(r)
		if set == "" {
			continue
		}
		if r.Default || r.Head.RuleKind() != ast.MultiValue || len(r.Head.Ref()) != 1 {
			return &objectError{File: file, Line: line(r.Location),
				Msg: fmt.Sprintf("%s must be a partial set rule, without a default: %s contains v if { ... }", set, set)}
		}
		sets++
	}
	if sets == 0 {
		return &objectError{File: file, Line: line(m.Package.Location),
			Msg: "a CredentialPolicy adds to deny or warn (deny contains v if { ... }): this one refuses nothing"}
	}
	return readsOnlyItsOwn(file, m, true)
}

// readsOnlyItsOwn refuses a module that reads the policy objects' packages: each object
// must pass or fail by itself, and be deleted without breaking another policy. A policy
// object (object) may read, of data.credgate, only the helpers (credgate.lib) and the files'
// policies (credgate.admission), and never data as a whole or under a key it computes.
func readsOnlyItsOwn(file string, m *ast.Module, object bool) error {
	var bad *ast.Term
	check := func(ref ast.Ref, loc *ast.Term) {
		if bad != nil || len(ref) == 0 || !ref[0].Equal(ast.DefaultRootDocument) {
			return
		}
		switch {
		case !object:
			if len(ref) >= 3 && ref[1].Equal(ast.StringTerm(ReservedRoot)) && ref[2].Equal(ast.StringTerm("object")) {
				bad = loc
			}
		case len(ref) == 1:
			bad = loc
		case !ast.IsConstant(ref[1].Value):
			bad = loc
		case ref[1].Equal(ast.StringTerm(ReservedRoot)):
			if len(ref) < 3 || !ref[2].Equal(ast.StringTerm("lib")) && !ref[2].Equal(ast.StringTerm("admission")) {
				bad = loc
			}
		}
	}
	for _, imp := range m.Imports {
		if ref, ok := imp.Path.Value.(ast.Ref); ok {
			check(ref, imp.Path)
		}
	}
	walkTerms(m, func(t *ast.Term) bool {
		if ref, ok := t.Value.(ast.Ref); ok {
			check(ref, t)
		}
		return bad != nil
	})
	if bad == nil {
		return nil
	}
	what := "data.credgate.object (the CredentialPolicies' packages)"
	if object {
		what = "data.credgate beyond data.credgate.lib and data.credgate.admission, or data as a whole"
	}
	return &objectError{File: file, Line: line(bad.Location), Msg: fmt.Sprintf("reads %s: %s", what, bad)}
}

// moveObjectModule puts the module of the Object named name in its own package.
func moveObjectModule(name string, m *ast.Module) {
	path := ast.Ref{ast.DefaultRootDocument.Copy(), ast.StringTerm(ReservedRoot), ast.StringTerm("object"), ast.StringTerm(name)}
	for _, t := range path {
		t.Location = m.Package.Location
	}
	m.Package.Path = path
}

// locatedError is one error as OPA or credgate located it.
type locatedError struct {
	File       string
	Row        int
	Code, Text string
}

// walkErrors calls visit with each error of err's tree that says where it arose, as OPA and
// credgate locate their errors (never from the text, which may quote anything a policy or an
// input holds).
func walkErrors(err error, visit func(locatedError)) {
	switch t := err.(type) {
	case ast.Errors:
		for _, x := range t {
			if x.Location != nil {
				visit(locatedError{x.Location.File, x.Location.Row, x.Code, x.Message})
			}
		}
	case *ast.Error:
		if t.Location != nil {
			visit(locatedError{t.Location.File, t.Location.Row, t.Code, t.Message})
		}
	case *topdown.Error:
		if t.Location != nil {
			visit(locatedError{t.Location.File, t.Location.Row, t.Code, t.Message})
		}
	case *ReservedError:
		visit(locatedError{t.File, t.Line, "reserved", strings.TrimPrefix(t.Error(), fmt.Sprintf("%s:%d: ", t.File, t.Line))})
	case *objectError:
		code := "rego_compile_error"
		if t.Spec {
			code = "invalid_spec"
		}
		visit(locatedError{t.File, t.Line, code, t.Msg})
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, x := range u.Unwrap() {
			walkErrors(x, visit)
		}
	case interface{ Unwrap() error }:
		if x := u.Unwrap(); x != nil {
			walkErrors(x, visit)
		}
	}
}

// notLocated is the message of an object no error of the failure is located in.
const notLocated = "not served: it fails with the other policies (credgate's log has the details)"

// maxObjectMessage bounds the message of an Object's error kept for its status.
const maxObjectMessage = 1024

// objectMessage says, for the status of the Object named name, what err finds in it: each
// error located in its module, as "line N: code: message" (the first line of OPA's message,
// without the source it quotes). An evaluation error (on a canary input) gives its code and
// line only: its message may quote values of the input, a tenant's. Bounded.
func objectMessage(err error, name string) string {
	file := ObjectFile(name)
	var canary *CanaryError
	evaluation := errors.As(err, &canary)
	var msgs []string
	walkErrors(err, func(e locatedError) {
		if e.File != file {
			return
		}
		msg, _, _ := strings.Cut(e.Text, "\n")
		switch {
		case evaluation:
			on := "a sample input"
			if strings.HasPrefix(canary.Input, "recent") {
				on = "a recent admission"
			}
			msg = fmt.Sprintf("line %d: %s on %s (credgate's log has the details)", e.Row, e.Code, on)
		case e.Row > 0:
			msg = fmt.Sprintf("line %d: %s: %s", e.Row, e.Code, msg)
		default:
			msg = e.Code + ": " + msg
		}
		if !slices.Contains(msgs, msg) {
			msgs = append(msgs, msg)
		}
	})
	if len(msgs) == 0 {
		return notLocated
	}
	return truncate(strings.Join(msgs, "; "), maxObjectMessage)
}

// isSpecError says whether err is an error of an object's fields other than its Rego.
func isSpecError(err error) bool {
	var oe *objectError
	return errors.As(err, &oe) && oe.Spec
}

// evaluateObjects adds to res the violations of the policy objects that select the input's
// namespace, each evaluated on its own, so that an object's errors and cost stay where it
// applies. With all (the canary, on a sample input), every object is evaluated, and the
// violations of those that do not select the namespace dropped.
func (r *Revision) evaluateObjects(ctx context.Context, input ast.Value, set *setEvaluation, targets *ast.Term, all bool, res *Result) error {
	var nsLabels labels.Set
	for _, name := range r.objectOrder {
		o := r.objects[name]
		if !o.queried {
			continue
		}
		selected := true
		if o.selector != nil {
			if nsLabels == nil {
				nsLabels = inputNamespaceLabels(input)
			}
			selected = o.selector.Matches(nsLabels)
		}
		if !selected && !all {
			continue
		}
		rs, err := eval(ctx, o.query, evalOptions(input, set, targets)...)
		if err != nil {
			return fmt.Errorf("policy %s: %w", name, err)
		}
		if !selected || len(rs) == 0 {
			continue
		}
		deny, warn := violations([]any{rs[0].Bindings["deny"]}, name), violations([]any{rs[0].Bindings["warn"]}, name)
		for _, vs := range [][]Violation{deny, warn} {
			for i := range vs {
				vs[i].Enforce = o.enforcement[vs[i].Rule]
			}
		}
		res.Deny, res.Warn = mergeViolations(res.Deny, deny), mergeViolations(res.Warn, warn)
	}
	return nil
}

// inputNamespaceLabels reads input.namespace.labels.
func inputNamespaceLabels(input ast.Value) labels.Set {
	set := labels.Set{}
	in, ok := input.(ast.Object)
	if !ok {
		return set
	}
	ns := in.Get(ast.StringTerm("namespace"))
	if ns == nil {
		return set
	}
	nso, ok := ns.Value.(ast.Object)
	if !ok {
		return set
	}
	l := nso.Get(ast.StringTerm("labels"))
	if l == nil {
		return set
	}
	lo, ok := l.Value.(ast.Object)
	if !ok {
		return set
	}
	lo.Foreach(func(k, v *ast.Term) {
		ks, ok1 := k.Value.(ast.String)
		vs, ok2 := v.Value.(ast.String)
		if ok1 && ok2 {
			set[string(ks)] = string(vs)
		}
	})
	return set
}

// objectRules returns the rule ids the object named name declares, sorted.
func (r *Revision) objectRules(name string) []string {
	var ids []string
	for _, rule := range r.rules {
		if rule.File == ObjectFile(name) && !slices.Contains(ids, rule.Name()) {
			ids = append(ids, rule.Name())
		}
	}
	slices.Sort(ids)
	return ids
}

// parseObject reads file name as a CredentialPolicy if it is one (its apiVersion and kind say
// so); ok is false for any other document, which is data.
func parseObject(b []byte, name string) (Object, bool, error) {
	var tm struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := yaml.Unmarshal(b, &tm); err != nil || tm.Kind != "CredentialPolicy" || tm.APIVersion != v1alpha1.GroupVersion.String() {
		return Object{}, false, nil // data, or not even that: mergeData says why
	}
	var p v1alpha1.CredentialPolicy
	if err := yaml.UnmarshalStrict(b, &p); err != nil {
		return Object{}, true, fmt.Errorf("%s: CredentialPolicy: %w", name, err)
	}
	switch {
	case p.Name == "":
		return Object{}, true, fmt.Errorf("%s: CredentialPolicy without metadata.name", name)
	case !objectNameRE.MatchString(p.Name) || len(p.Name) > 253:
		return Object{}, true, fmt.Errorf("%s: CredentialPolicy name %q: want a DNS subdomain (lower case letters, digits, '-' and '.')", name, p.Name)
	case p.Spec.Rego == "":
		return Object{}, true, fmt.Errorf("%s: CredentialPolicy %s has no spec.rego", name, p.Name)
	}
	o := Object{Name: p.Name, UID: "file:" + name, Generation: 1, Rego: p.Spec.Rego, NamespaceSelector: p.Spec.NamespaceSelector}
	if len(p.Spec.Enforcement) > 0 {
		o.Enforcement = make(map[string]Action, len(p.Spec.Enforcement))
		for rule, a := range p.Spec.Enforcement {
			o.Enforcement[rule] = Action(a)
		}
	}
	return o, true, nil
}

// objectNameRE is a DNS subdomain, the form of a cluster-scoped object's name.
var objectNameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$`)

// addObject adds o, read from file, to s.
func (s *Source) addObject(o Object, file string) error {
	if s.Objects == nil {
		s.Objects = map[string]Object{}
	}
	if _, ok := s.Objects[o.Name]; ok {
		return fmt.Errorf("%s: CredentialPolicy %s is defined twice", file, o.Name)
	}
	s.Modules[ObjectFile(o.Name)] = o.Rego
	o.Rego = ""
	s.Objects[o.Name] = o
	return nil
}

// typeCheckObjects type-checks the policy objects' modules against the input schema, as
// credgate policy check does files: a reference to input the schema does not have
// (input.credentialz) would never match, and a policy that never refuses is worse than one
// refused. It compiles copies of modules (the objects' among all they may import) and reports
// the errors in the objects' modules only; the files keep compiling as they always did.
func typeCheckObjects(modules map[string]*ast.Module, objectFiles map[string]string) error {
	if len(objectFiles) == 0 {
		return nil
	}
	schemas, err := inputSchemaSet()
	if err != nil {
		return err
	}
	copies := make(map[string]*ast.Module, len(modules))
	for name, m := range modules {
		copies[name] = m.Copy()
	}
	c := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1).WithCapabilities(capabilities()).
		WithSchemas(schemas).WithUseTypeCheckAnnotations(true)
	if c.Compile(copies); !c.Failed() {
		return nil
	}
	var errs []error
	for _, e := range c.Errors {
		if e.Location != nil && objectFiles[e.Location.File] != "" {
			msg := strings.TrimPrefix(describeCompileError(e), fmt.Sprintf("%s:%d: %s: ", e.Location.File, e.Location.Row, e.Code))
			errs = append(errs, &ast.Error{Code: e.Code, Message: msg, Location: e.Location})
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("type-check policies against the input schema: %w", errors.Join(errs...))
}
