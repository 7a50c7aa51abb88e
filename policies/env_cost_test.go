package policies

import (
	"context"
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
)

// BenchmarkSharedVariables measures the built-in rules on a pod requesting 32 Credentials
// (the most a pod may) of 64 variables each, all setting the same 64 names: conflicting-env
// must find the shared names without comparing every pair of credentials' variables.
func BenchmarkSharedVariables(b *testing.B) {
	ctx := context.Background()
	rev, err := Load(ctx, "")
	if err != nil {
		b.Fatal(err)
	}
	creds := make([]credential.Resolved, 32)
	for i := range creds {
		c := &v1alpha1.Credential{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c%02d", i), Namespace: "ml"},
			Spec: v1alpha1.CredentialSpec{Type: v1alpha1.TypeGeneric}}
		for j := range 64 {
			c.Spec.Env = append(c.Spec.Env, v1alpha1.EnvVar{Name: fmt.Sprintf("V%02d", j), Value: new("x")})
		}
		if creds[i], err = credential.Resolve(c); err != nil {
			b.Fatal(err)
		}
	}
	in := Input{Operation: "CREATE", Namespace: "ml", Kind: "Pod", Version: "v1",
		Object:      []byte(`{"metadata":{"name":"p"},"spec":{"containers":[{"name":"c","image":"x"}]}}`),
		Credentials: creds, Targets: []string{"c"}}
	value, err := in.Value()
	if err != nil {
		b.Fatal(err)
	}
	res, err := rev.Evaluate(ctx, value)
	if err != nil {
		b.Fatal(err)
	}
	if len(res.Deny) == 0 {
		b.Fatal("conflicting-env refused nothing")
	}
	timed(b, func() {
		if _, err := rev.Evaluate(ctx, value); err != nil {
			b.Fatal(err)
		}
	})
}
