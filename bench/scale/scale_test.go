package main

import (
	"encoding/json"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/credgate/credgate/credential"
	"github.com/credgate/credgate/policies"
	"github.com/credgate/credgate/review"
)

// TestTrainingPodAdmitted holds the run's fixture to what the run checks in the cluster, in
// seconds rather than minutes: a namespace's training pod, requesting its ten Credentials, is
// admitted and given all ten by credgate's own review, warned only for the static keys.
func TestTrainingPodAdmitted(t *testing.T) {
	ctx := t.Context()
	rev, err := policies.Load(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	creds, _ := tenantCredentials(7)
	ns := tenant(7)
	r := &review.Reviewer{Store: credential.NewStaticStore(ns.Name, creds...),
		Namespaces: review.StaticNamespaces{ns.Name: ns.Labels}, Policy: policies.NewEngine(rev)}
	pod := trainingPod(ns.Name)
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := r.Review(ctx, review.Request{Namespace: ns.Name, Object: pod, Raw: raw, Operation: "CREATE",
		Name: pod.Name, User: "alice@example.com", GVK: schema.GroupVersionKind{Version: "v1", Kind: "Pod"}})
	if err != nil {
		t.Fatal(err)
	}
	if dec.Denied() {
		t.Fatalf("refused: %+v", dec.Violations)
	}
	if !dec.Mutated || len(dec.Patch) == 0 || !sameNames(dec.Credentials, credentialNames) {
		t.Errorf("not given all its Credentials: mutated %v, %d patch operations, credentials %v", dec.Mutated, len(dec.Patch), dec.Credentials)
	}
	var warned []string
	for _, v := range dec.Warned {
		warned = append(warned, v.Rule+":"+v.Credential)
	}
	slices.Sort(warned)
	if want := []string{"static-credentials:aws-data", "static-credentials:gcs"}; !slices.Equal(warned, want) {
		t.Errorf("warned %v, want %v", warned, want)
	}
}

func TestParseStatus(t *testing.T) {
	status := "Name:\tcredgate\nVmPeak:\t 1500000 kB\nVmHWM:\t   91234 kB\nVmRSS:\t   80000 kB\n" +
		"RssAnon:\t   50000 kB\nRssFile:\t   30000 kB\nRssShmem:\t       0 kB\nThreads:\t12\n"
	m, err := parseStatus([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if want := (memory{rss: 80000, hwm: 91234, anon: 50000, file: 30000}); m != want {
		t.Errorf("parseStatus = %+v, want %+v", m, want)
	}
	if _, err := parseStatus([]byte("VmRSS:\t 1 kB\n")); err == nil {
		t.Error("parseStatus of a status without VmHWM: no error")
	}
}

func TestFindServeIgnoresOthers(t *testing.T) {
	if p, ok := findServe("/nonexistent/audit.log"); ok {
		t.Errorf("found process %d for an audit file no credgate serve has", p.pid)
	}
}
