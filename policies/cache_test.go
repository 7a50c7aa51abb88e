package policies

import (
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
)

// TestValueCache: a Credential's value is reused while its resourceVersion stands, rebuilt
// when it changes, and never cached for an object no API server stored.
func TestValueCache(t *testing.T) {
	cred := func(uid, rv string, level v1alpha1.AccessLevel) credential.Resolved {
		c := &v1alpha1.Credential{
			ObjectMeta: metav1.ObjectMeta{Name: "hf", Namespace: "ml", UID: types.UID(uid), ResourceVersion: rv},
			Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeHuggingFace, SecretRef: &v1alpha1.SecretReference{Name: "hf"},
				Access: v1alpha1.Access{Level: level}},
		}
		r, err := credential.Resolve(c)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	level := func(c *ValueCache, r credential.Resolved) string {
		t.Helper()
		in := Input{Object: []byte(`{"spec":{}}`), Credentials: []credential.Resolved{r}, Cache: c}
		v, err := in.Value()
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.Find(ast.MustParseRef("x.credentials[0].access.level")[1:])
		if err != nil {
			t.Fatal(err)
		}
		return string(got.(ast.String))
	}

	var c ValueCache
	if got := level(&c, cred("1", "10", v1alpha1.AccessReadOnly)); got != "read-only" {
		t.Fatalf("level = %s", got)
	}
	// The same revision is served from the cache, even if the object in hand differed: the
	// resourceVersion is the API server's word that it does not.
	if got := level(&c, cred("1", "10", v1alpha1.AccessAdmin)); got != "read-only" {
		t.Errorf("same resourceVersion: level = %s, want the cached read-only", got)
	}
	if got := level(&c, cred("1", "11", v1alpha1.AccessAdmin)); got != "admin" {
		t.Errorf("new resourceVersion: level = %s, want admin", got)
	}
	if got := level(&c, cred("", "11", v1alpha1.AccessReadWrite)); got != "read-write" {
		t.Errorf("no UID: level = %s, want read-write (not cached)", got)
	}
	if got := level(nil, cred("1", "11", v1alpha1.AccessReadWrite)); got != "read-write" {
		t.Errorf("nil cache: level = %s, want read-write", got)
	}
}

// TestValueCacheResolve: a Credential is resolved once per revision, its resolution (or its
// refusal) reused while the resourceVersion stands and made afresh when it changes; the
// Resolved returned points at the request's own object; an object no API server stored is
// never cached.
func TestValueCacheResolve(t *testing.T) {
	cred := func(uid, rv, variable string) *v1alpha1.Credential {
		return &v1alpha1.Credential{
			ObjectMeta: metav1.ObjectMeta{Name: "cfg", Namespace: "ml", UID: types.UID(uid), ResourceVersion: rv},
			Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeGeneric, SecretRef: &v1alpha1.SecretReference{Name: "cfg"},
				Env: []v1alpha1.EnvVar{{Name: variable, Value: new("x")}}},
		}
	}
	variable := func(c *ValueCache, cred *v1alpha1.Credential) string {
		t.Helper()
		r, err := c.Resolve(cred)
		if err != nil {
			t.Fatal(err)
		}
		if r.Source != cred {
			t.Errorf("Source is not the object resolved")
		}
		if len(r.Env) != 1 {
			t.Fatalf("env = %+v", r.Env)
		}
		return r.Env[0].Name
	}

	var c ValueCache
	if got := variable(&c, cred("1", "10", "A")); got != "A" {
		t.Fatalf("variable = %s", got)
	}
	if got := variable(&c, cred("1", "10", "B")); got != "A" {
		t.Errorf("same resourceVersion: variable = %s, want the cached A", got)
	}
	if got := variable(&c, cred("1", "11", "B")); got != "B" {
		t.Errorf("new resourceVersion: variable = %s, want B", got)
	}
	if got := variable(&c, cred("", "11", "C")); got != "C" {
		t.Errorf("no UID: variable = %s, want C (not cached)", got)
	}
	if got := variable(nil, cred("1", "11", "C")); got != "C" {
		t.Errorf("nil cache: variable = %s, want C", got)
	}

	// A refusal is kept for its revision too, and forgotten with it.
	bad := cred("2", "20", "not a variable=")
	_, want := credential.Resolve(bad)
	if want == nil {
		t.Fatal("a Credential with an invalid variable name resolved")
	}
	if _, err := c.Resolve(bad); err == nil || err.Error() != want.Error() {
		t.Fatalf("err = %v, want %v", err, want)
	}
	if _, err := c.Resolve(cred("2", "20", "A")); err == nil {
		t.Error("same resourceVersion: the cached refusal was not returned")
	}
	if _, err := c.Resolve(cred("2", "21", "A")); err != nil {
		t.Errorf("new resourceVersion: %v", err)
	}
}
