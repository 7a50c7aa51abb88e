package policies

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// A built-in rule whose package annotation says `custom: {scope: credential}` decides on each
// requested Credential alone, in its namespace: its deny and warn sets for an input are the
// union of its sets for each Credential c of input.credentials given alone, with the
// namespace ({"credentials": [c], "namespace": input.namespace}). So it is evaluated once per
// Credential revision (and namespace labels), not per admission: a Credential's policy-input
// value is built once per revision and shared (ValueCache), and a scoped rule's violations are
// kept per value. admin-scoped-credential, the IAM analysis of policy documents — the costliest
// rule, whose cost grows with what a tenant writes — static-credentials and
// credential-not-ready are.
//
// Such a rule may read the clock only to compare it with its Credential's status.expiresAt
// (credential-not-ready does): a result found before that time is kept until it, one found
// after for good.
//
// Compile checks that such a package reads nothing of the input but input.credentials and
// input.namespace, itself or through the helpers it calls; TestCredentialScopedParity holds the
// split evaluation equal to the whole one on every sample input.

// scopeCredential is the custom.scope value of a credential-scoped built-in rule.
const scopeCredential = "credential"

// maxScopedValues bounds the credentials whose scoped violations are kept (each its latest
// value only, which the ValueCache holds too).
const maxScopedValues = 1024

// scoped evaluates a revision's credential-scoped rules per credential value.
type scoped struct {
	packages []string // sorted
	prepared rego.PreparedEvalQuery

	mu   sync.Mutex
	kept map[scopedKey]keptValue
}

// scopedKey names a credential: its namespace and name. Only the credential's latest value is
// kept, so that an old revision is let go with its results when a new one is evaluated.
type scopedKey struct{ namespace, credential string }

// keptValue is what the scoped rules found on one value of a credential, compared by identity
// (the ValueCache shares a revision's value between admissions), per namespace value.
type keptValue struct {
	value   ast.Value
	results []keptResult
}

// keptResult is what the scoped rules found on a credential in a namespace (its value), and
// until when it holds (zero: for as long as the value lives).
type keptResult struct {
	namespace ast.Value
	result    Result
	until     time.Time
}

// credentialScoped returns the packages of the built-in modules (the builtin names of
// modules, as parsed, with their annotations) whose package annotation scopes them to a
// credential.
func credentialScoped(modules map[string]*ast.Module, builtin map[string]bool) []string {
	var pkgs []string
	for name, m := range modules {
		pkg := packageName(m)
		if !builtin[name] || !strings.HasPrefix(pkg, BuiltinPackage+".") {
			continue
		}
		for _, a := range m.Annotations {
			if a.Scope == "package" && a.Custom["scope"] == scopeCredential && !slices.Contains(pkgs, pkg) {
				pkgs = append(pkgs, pkg)
			}
		}
	}
	slices.Sort(pkgs)
	return pkgs
}

// checkScoped checks, in the compiled modules, that each of the credential-scoped packages
// pkgs reads only input.credentials.
func checkScoped(pkgs []string, compiled map[string]*ast.Module) error {
	index := newRuleIndex(compiled)
	for _, pkg := range pkgs {
		if err := readsOnlyCredentials(pkg, compiled, index); err != nil {
			return err
		}
	}
	return nil
}

// readsOnlyCredentials checks that the rules of package pkg, and every rule they reach under
// data, refer to the input only under input.credentials and input.namespace.
func readsOnlyCredentials(pkg string, compiled map[string]*ast.Module, index *ruleIndex) error {
	var work []*ast.Rule
	for _, m := range compiled {
		if packageName(m) == pkg {
			work = append(work, m.Rules...)
		}
	}
	seen := map[*ast.Rule]bool{}
	var bad string
	for len(work) > 0 && bad == "" {
		r := work[len(work)-1]
		work = work[:len(work)-1]
		if seen[r] {
			continue
		}
		seen[r] = true
		walkRefs(r, func(ref ast.Ref) bool {
			switch {
			case ref[0].Equal(ast.InputRootDocument):
				if len(ref) < 2 || !ref[1].Equal(credentialsKey) && !ref[1].Equal(namespaceKey) {
					bad = ref.String()
				}
			case ref[0].Equal(ast.DefaultRootDocument):
				for _, n := range index.reached(ref) {
					work = append(work, n.defs...)
				}
			}
			return false
		})
	}
	if bad != "" {
		return fmt.Errorf("built-in package %s is scoped to a credential, but reads %s (only input.credentials and input.namespace)", pkg, bad)
	}
	return nil
}

// newScoped prepares the query of the credential-scoped packages pkgs of modules (as parsed),
// or returns nil if there are none. It reads each deny and warn set a package defines (the
// built-in ones are partial sets: always defined).
func newScoped(ctx context.Context, compiler *ast.Compiler, data map[string]any, modules map[string]*ast.Module, pkgs []string) (*scoped, error) {
	if len(pkgs) == 0 {
		return nil, nil
	}
	defined := map[string]bool{}
	for _, m := range modules {
		if pkg := packageName(m); slices.Contains(pkgs, pkg) {
			for _, r := range m.Rules {
				if set := setOf(r); set != "" {
					defined["data."+pkg+"."+set] = true
				}
			}
		}
	}
	var deny, warn []string
	for _, pkg := range pkgs {
		if ref := "data." + pkg + ".deny"; defined[ref] {
			deny = append(deny, ref)
		}
		if ref := "data." + pkg + ".warn"; defined[ref] {
			warn = append(warn, ref)
		}
	}
	prepared, err := rego.New(
		rego.Query("deny := ["+strings.Join(deny, ", ")+"]; warn := ["+strings.Join(warn, ", ")+"]"),
		rego.Compiler(compiler),
		rego.Store(inmem.NewFromObject(data)),
		rego.SetRegoVersion(ast.RegoV1),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("prepare the credential-scoped policy query: %w", err)
	}
	return &scoped{packages: pkgs, prepared: prepared, kept: map[scopedKey]keptValue{}}, nil
}

// credentialsKey and namespaceKey are the input's members a scoped rule reads.
var credentialsKey, namespaceKey = ast.StringTerm("credentials"), ast.StringTerm("namespace")

// evaluate returns the violations of the scoped rules on each credential of input.
func (s *scoped) evaluate(ctx context.Context, input ast.Value) (Result, error) {
	var out Result
	in, _ := input.(ast.Object)
	if in == nil {
		return out, nil
	}
	creds := in.Get(credentialsKey)
	if creds == nil {
		return out, nil
	}
	arr, _ := creds.Value.(*ast.Array)
	if arr == nil {
		return out, nil
	}
	var ns ast.Value = ast.Null{}
	if t := in.Get(namespaceKey); t != nil {
		ns = t.Value
	}
	for i := range arr.Len() {
		res, err := s.one(ctx, arr.Elem(i).Value, ns)
		if err != nil {
			return Result{}, err
		}
		out.Deny = append(out.Deny, res.Deny...)
		out.Warn = append(out.Warn, res.Warn...)
	}
	return out, nil
}

// one returns the violations of the scoped rules on the credential value c in the namespace
// ns: kept from an earlier admission that shared the value, in a namespace of the same name
// and labels, or evaluated with c alone as the input's credentials.
func (s *scoped) one(ctx context.Context, c, ns ast.Value) (Result, error) {
	key, cacheable := keyOf(c, ns)
	var expires time.Time
	if cacheable {
		expires, cacheable = expiresAt(c.(ast.Object))
	}
	now := time.Now()
	if cacheable {
		s.mu.Lock()
		kv := s.kept[key]
		s.mu.Unlock()
		if kv.value == c {
			for _, k := range kv.results {
				if k.namespace.Compare(ns) == 0 && (k.until.IsZero() || now.Before(k.until)) {
					return k.result, nil
				}
			}
		}
	}
	input := ast.NewObject([2]*ast.Term{credentialsKey, ast.ArrayTerm(ast.NewTerm(c))}, [2]*ast.Term{namespaceKey, ast.NewTerm(ns)})
	rs, err := eval(ctx, s.prepared, rego.EvalParsedInput(input), noMetrics)
	if err != nil {
		return Result{}, err
	}
	if len(rs) == 0 {
		return Result{}, fmt.Errorf("the deny and warn sets of %s are undefined", strings.Join(s.packages, ", "))
	}
	res := Result{Deny: violations(rs[0].Bindings["deny"], ""), Warn: violations(rs[0].Bindings["warn"], "")}
	if cacheable {
		// Evaluated before the credential's expiry, the result holds until it; after, for good.
		var until time.Time
		if !expires.IsZero() && now.Before(expires) {
			until = expires
		}
		s.mu.Lock()
		if len(s.kept) >= maxScopedValues {
			clear(s.kept)
		}
		kv := s.kept[key]
		var results []keptResult
		if kv.value == c { // another namespace value (labels) for the same credential value
			results = slices.DeleteFunc(slices.Clone(kv.results), func(k keptResult) bool { return k.namespace.Compare(ns) == 0 })
			if len(results) >= 4 {
				results = results[1:]
			}
		}
		s.kept[key] = keptValue{value: c, results: append(results, keptResult{namespace: ns, result: res, until: until})}
		s.mu.Unlock()
	}
	return res, nil
}

// nameKey is the name member of a credential's and of the namespace's value.
var nameKey = ast.StringTerm("name")

// keyOf names the credential value c in the namespace value ns, and reports whether c may be
// kept: an object (compared by identity) with a name, in a namespace with a name.
func keyOf(c, ns ast.Value) (scopedKey, bool) {
	co, ok := c.(ast.Object)
	if !ok {
		return scopedKey{}, false
	}
	no, ok := ns.(ast.Object)
	if !ok {
		return scopedKey{}, false
	}
	cn, ok1 := stringMember(co, nameKey)
	nn, ok2 := stringMember(no, nameKey)
	return scopedKey{namespace: nn, credential: cn}, ok1 && ok2
}

func stringMember(o ast.Object, k *ast.Term) (string, bool) {
	t := o.Get(k)
	if t == nil {
		return "", false
	}
	s, ok := t.Value.(ast.String)
	return string(s), ok
}

// statusKey and expiresAtKey locate a credential value's status.expiresAt.
var statusKey, expiresAtKey = ast.StringTerm("status"), ast.StringTerm("expiresAt")

// expiresAt returns the credential value's status.expiresAt (zero when it has none), and
// whether the value may be kept: not when expiresAt is there but not a time (the rules would
// read it otherwise than this does).
func expiresAt(c ast.Object) (time.Time, bool) {
	var st ast.Object
	if t := c.Get(statusKey); t != nil {
		st, _ = t.Value.(ast.Object)
	}
	if st == nil {
		return time.Time{}, true
	}
	t := st.Get(expiresAtKey)
	if t == nil {
		return time.Time{}, true
	}
	s, ok := t.Value.(ast.String)
	if !ok {
		return time.Time{}, false
	}
	at, err := time.Parse(time.RFC3339, string(s))
	return at, err == nil
}
