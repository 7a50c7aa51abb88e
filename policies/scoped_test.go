package policies

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestCredentialScopedParity: evaluating the credential-scoped rules per credential, as a
// revision does, decides exactly as evaluating every rule on the whole input: on every sample
// input, the example training pod, and both with every credential made admin-scoped in each
// way the rule knows (so that the scoped rule has something to find). Each input is evaluated
// twice, the second time from the violations kept per credential value.
func TestCredentialScopedParity(t *testing.T) {
	ctx := context.Background()
	rev, err := Load(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"credgate.builtin.admin_scoped_credential", "credgate.builtin.credential_not_ready", "credgate.builtin.static_credentials"}
	if rev.scoped == nil || !slicesEqual(rev.scoped.packages, want) {
		t.Fatalf("scoped packages = %v, want %v", rev.scoped, want)
	}
	whole := wholeQuery(t, ctx)

	inputs := map[string]ast.Value{}
	for _, s := range SampleInputs() {
		inputs[s.Name] = s.Value
	}
	example, err := exampleInput(t).Value()
	if err != nil {
		t.Fatal(err)
	}
	inputs["example"] = example
	for name, v := range maps2(inputs) {
		for how, patch := range map[string]string{
			"level":          `{"access": {"level": "admin"}}`,
			"policyDocument": `{"access": {"level": "read-only", "policyDocument": {"Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}}}`,
			"sessionPolicy":  `{"aws": {"mode": "assumeRole", "roleArn": "arn:aws:iam::1:role/r", "sessionPolicy": {"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}}}`,
			"role":           `{"access": {"level": "read-only", "roles": ["roles/owner"]}}`,
		} {
			inputs[name+" with "+how] = withEveryCredential(t, v, patch)
		}
		// The same credential values in a namespace that requires temporary credentials: what
		// was kept for them in the first namespace must not answer for this one.
		inputs[name+" requiring temporary credentials"] = withNamespaceLabel(v, "credgate.dev/require-temporary", "true")
	}
	denied := 0
	for name, in := range inputs {
		want := evalWhole(t, ctx, whole, in)
		for round := range 2 {
			got, err := rev.Evaluate(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			got.Revision = ""
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s (evaluation %d): split evaluation differs from the whole (-whole +split):\n%s", name, round+1, diff)
			}
		}
		for _, v := range want.Deny {
			if v.Rule == "admin-scoped-credential" {
				denied++
				break
			}
		}
	}
	if static := countRule(t, ctx, whole, inputs, "static-credentials"); static[0] == 0 || static[1] == 0 {
		t.Errorf("static-credentials refused %d and warned %d inputs: the test exercises too little of it", static[0], static[1])
	}
	if denied < len(inputs)/2 {
		t.Errorf("admin-scoped-credential refused %d of %d inputs: the test exercises too little of the scoped rule", denied, len(inputs))
	}
}

// TestScopedPackageMustReadOnlyCredentials: a credential-scoped package that reads any other
// part of the input, itself or through a helper, is refused at compile.
func TestScopedPackageMustReadOnlyCredentials(t *testing.T) {
	for name, src := range map[string]string{
		"itself": `package credgate.builtin.x

deny contains c.name if {
	some c in input.credentials
	input.pod.spec.hostNetwork
}
`,
		"the object": `package credgate.builtin.x

deny contains c.name if {
	some c in input.credentials
	input.object.metadata.name == c.name
}
`,
		"through a helper": `package credgate.builtin.x

import data.credgate.lib

deny contains c.name if {
	some c in input.credentials
	lib.service_account == "default"
}
`,
		"through the helpers' package": `package credgate.builtin.x

deny contains c.name if {
	some c in input.credentials
	is_object(data.credgate.lib)
}
`,
	} {
		t.Run(name, func(t *testing.T) {
			modules := map[string]*ast.Module{}
			for n, text := range Builtin().Modules {
				modules[n] = ast.MustParseModuleWithOpts(text, parserOptions)
			}
			modules["x.rego"] = ast.MustParseModuleWithOpts(src, parserOptions)
			c := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1).WithCapabilities(capabilities())
			if c.Compile(modules); c.Failed() {
				t.Fatal(c.Errors)
			}
			err := checkScoped([]string{"credgate.builtin.x"}, c.Modules)
			if err == nil || !strings.Contains(err.Error(), "reads input.") {
				t.Errorf("checkScoped = %v, want it to name what the package reads", err)
			}
			if err := checkScoped([]string{"credgate.builtin.admin_scoped_credential"}, c.Modules); err != nil {
				t.Errorf("the built-in scoped package is refused: %v", err)
			}
		})
	}
}

// wholeQuery prepares the query of every rule on the whole input, as before scoping.
func wholeQuery(t *testing.T, ctx context.Context) rego.PreparedEvalQuery {
	t.Helper()
	src := Builtin()
	modules := map[string]*ast.Module{}
	for name, text := range src.Modules {
		modules[name] = ast.MustParseModuleWithOpts(text, parserOptions)
	}
	query := planQuery(modules, nil, nil)
	c := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1).WithCapabilities(capabilities())
	if c.Compile(modules); c.Failed() {
		t.Fatal(c.Errors)
	}
	pq, err := rego.New(rego.Query(query), rego.Compiler(c), rego.Store(inmem.NewFromObject(src.data()))).PrepareForEval(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return pq
}

func evalWhole(t *testing.T, ctx context.Context, pq rego.PreparedEvalQuery, in ast.Value) Result {
	t.Helper()
	rs, err := pq.Eval(ctx, rego.EvalParsedInput(in))
	if err != nil || len(rs) == 0 {
		t.Fatalf("whole evaluation: %v %v", rs, err)
	}
	return Result{Deny: violations(rs[0].Bindings["deny"], ""), Warn: violations(rs[0].Bindings["warn"], "")}
}

// withEveryCredential returns in with patch (a JSON object) merged into each credential.
func withEveryCredential(t *testing.T, in ast.Value, patch string) ast.Value {
	t.Helper()
	p := ast.MustParseTerm(patch).Value.(ast.Object)
	obj := in.(ast.Object)
	creds, ok := obj.Get(ast.StringTerm("credentials")).Value.(*ast.Array)
	if !ok || creds.Len() == 0 {
		return in
	}
	var out []*ast.Term
	for i := range creds.Len() {
		c := creds.Elem(i).Value.(ast.Object).Copy() // the samples are shared: change a copy
		p.Foreach(func(k, v *ast.Term) { c.Insert(k, v) })
		out = append(out, ast.NewTerm(c))
	}
	res := obj.Copy()
	res.Insert(ast.StringTerm("credentials"), ast.ArrayTerm(out...))
	return res
}

func maps2(m map[string]ast.Value) map[string]ast.Value {
	out := make(map[string]ast.Value, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func slicesEqual(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

// withNamespaceLabel returns in with the namespace label k=v.
func withNamespaceLabel(in ast.Value, k, v string) ast.Value {
	res := in.(ast.Object).Copy()
	ns, _ := res.Get(ast.StringTerm("namespace")).Value.(ast.Object)
	if ns == nil {
		ns = ast.NewObject()
	}
	ns = ns.Copy()
	labels, _ := ns.Get(ast.StringTerm("labels")).Value.(ast.Object)
	if labels == nil {
		labels = ast.NewObject()
	}
	labels = labels.Copy()
	labels.Insert(ast.StringTerm(k), ast.StringTerm(v))
	ns.Insert(ast.StringTerm("labels"), ast.NewTerm(labels))
	res.Insert(ast.StringTerm("namespace"), ast.NewTerm(ns))
	return res
}

// countRule counts the inputs rule refuses and warns of, evaluated whole.
func countRule(t *testing.T, ctx context.Context, pq rego.PreparedEvalQuery, inputs map[string]ast.Value, rule string) (n [2]int) {
	t.Helper()
	for _, in := range inputs {
		res := evalWhole(t, ctx, pq, in)
		for i, set := range [][]Violation{res.Deny, res.Warn} {
			for _, v := range set {
				if v.Rule == rule {
					n[i]++
					break
				}
			}
		}
	}
	return n
}

// TestScopedResultsExpire: what the credential-scoped rules found on a credential before its
// status.expiresAt is kept only until then: the same credential value, evaluated after, is
// refused as expired.
func TestScopedResultsExpire(t *testing.T) {
	ctx := context.Background()
	rev, err := Load(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	in := exampleInput(t)
	c := in.Credentials[0]
	src := c.Source.DeepCopy()
	src.UID, src.ResourceVersion = "u-expiring", "1"
	expiry := time.Now().Add(1500 * time.Millisecond).Truncate(time.Second).Add(time.Second)
	src.Status.ExpiresAt = &metav1.Time{Time: expiry}
	c.Source = src
	in.Credentials[0] = c
	expired := func() bool {
		v, err := in.Value()
		if err != nil {
			t.Fatal(err)
		}
		res, err := rev.Evaluate(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range res.Deny {
			if d.Rule == "credential-not-ready" && d.Credential == c.Name && strings.Contains(d.Message, "expired") {
				return true
			}
		}
		return false
	}
	for range 3 { // the second and third from what was kept
		if expired() {
			t.Fatalf("refused as expired before %s", expiry)
		}
	}
	time.Sleep(time.Until(expiry) + 50*time.Millisecond)
	if !expired() {
		t.Fatalf("admitted after its expiry %s: a kept result outlived it", expiry)
	}
}
