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
