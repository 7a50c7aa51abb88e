package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/util"
	"k8s.io/apimachinery/pkg/types"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/policies"
)

// TestParity checks in process what make bench-peer checks against the servers, without the
// OPA binary or a cluster: for every sample, on the mutating and the validating webhook's
// input, OPA (the library at the version bin/opa is built at) evaluating the adapter module
// over the repository's policies/*.rego finds exactly the violations credgate's policies find
// in the input document credgate's review package computes; and credgate decides what the
// sample says.
func TestParity(t *testing.T) {
	ctx := t.Context()
	files, err := policyFiles(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	rev, err := policies.Load(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	adapter, err := adapterModule(rev)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := readCredentials("testdata")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkSamples(creds); err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(filepath.Join("..", "..", trainingPod))
	if err != nil {
		t.Fatal(err)
	}
	ds, err := decideSamples(ctx, newDecider(rev, stored(creds), map[string]string{"kubernetes.io/metadata.name": namespace}), base, false)
	if err != nil {
		t.Fatal(err)
	}

	opts := []func(*rego.Rego){rego.Query("data." + peerPackage), rego.Module("peer.rego", adapter), rego.SetRegoVersion(ast.RegoV1)}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		opts = append(opts, rego.Module(f, string(b)))
	}
	query, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range ds {
		for what, dec := range map[string]*decision{"mutating": d.mut, "validating": d.val} {
			// The request body as OPA's server reads it, the result as it writes it.
			var body struct{ Input any }
			if err := util.UnmarshalJSON(dec.OPABody, &body); err != nil {
				t.Fatal(err)
			}
			rs, err := query.Eval(ctx, rego.EvalInput(body.Input))
			if err != nil || len(rs) != 1 {
				t.Fatalf("%s (%s): evaluate the adapter: %v, %d results", d.s.Name, what, err, len(rs))
			}
			out, err := json.Marshal(map[string]any{"result": rs[0].Expressions[0].Value})
			if err != nil {
				t.Fatal(err)
			}
			deny, warn, err := readOPA(out)
			if err != nil {
				t.Fatal(err)
			}
			if diff := sameFindings(dec.Found, deny, warn); diff != "" {
				t.Errorf("%s (%s input): %s", d.s.Name, what, diff)
			}
			if len(d.s.Denied) > 0 && len(deny) == 0 {
				t.Errorf("%s (%s input): OPA denies nothing; the sample is refused", d.s.Name, what)
			}
		}
	}
}

// stored gives creds what the API server gives every object it stores, and credgate's policy
// input and caches read: a UID, a resourceVersion, a generation.
func stored(creds []*v1alpha1.Credential) []*v1alpha1.Credential {
	out := make([]*v1alpha1.Credential, len(creds))
	for i, c := range creds {
		c = c.DeepCopy()
		c.UID = types.UID("uid-" + c.Name)
		c.ResourceVersion, c.Generation = "1", 1
		out[i] = c
	}
	return out
}

// TestMix checks that one cycle of the mix sends each sample as often as its weight, and never
// the same refused sample twice in a row.
func TestMix(t *testing.T) {
	order := mix()
	counts := make([]int, len(samples))
	for i, s := range order {
		counts[s]++
		if next := order[(i+1)%len(order)]; next == s && len(samples[s].Denied) > 0 {
			t.Errorf("refused sample %s twice in a row: %v", samples[s].Name, order)
		}
	}
	for i, s := range samples {
		if counts[i] != s.Weight {
			t.Errorf("sample %s sent %d times a cycle, want %d", s.Name, counts[i], s.Weight)
		}
	}
}

// TestFlags checks the flags' defaults and that bad values are refused.
func TestFlags(t *testing.T) {
	o, err := parseFlags(nil, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if o.opa != "bin/opa-"+libraryVersion() || len(o.clients) != 3 || o.rounds < 3 {
		t.Errorf("defaults: %+v", o)
	}
	for _, args := range [][]string{{"--clients", "1,x"}, {"--clients", "0"}, {"--rounds", "0"}, {"extra"}} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", args)
		}
	}
}
