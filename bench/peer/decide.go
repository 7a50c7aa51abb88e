package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	kjson "sigs.k8s.io/json"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
	"github.com/credgate/credgate/mutate"
	"github.com/credgate/credgate/policies"
	"github.com/credgate/credgate/review"
)

// decider runs credgate's own admission path in process — package review with the built-in
// policies, as credgate serve wires it — on the Credentials and namespace labels the cluster
// holds. Its evaluator records the input document each review evaluates and what the policies
// found in it: the document is what OPA is handed, the findings are what OPA must find.
type decider struct {
	reviewer *review.Reviewer
	rec      *recorder
}

// recorder is a review.Evaluator that evaluates with credgate's engine and keeps the input
// and result of the last evaluation. It serves one review at a time.
type recorder struct {
	engine *policies.Engine
	input  ast.Value
	result policies.Result
	calls  int
}

func (r *recorder) Evaluate(ctx context.Context, input ast.Value) (policies.Result, error) {
	r.calls++
	r.input = input
	res, err := r.engine.Evaluate(ctx, input)
	r.result = res
	return res, err
}

// newDecider returns a decider over rev (the built-in policies, at their default enforcement,
// as the cluster's credgate serve runs them), creds and the labels of the samples' namespace.
func newDecider(rev *policies.Revision, creds []*v1alpha1.Credential, nsLabels map[string]string) *decider {
	rec := &recorder{engine: policies.NewEngine(rev)}
	return &decider{rec: rec, reviewer: &review.Reviewer{
		Store:      credential.NewStaticStore(namespace, creds...),
		Namespaces: review.StaticNamespaces{namespace: nsLabels},
		Policy:     rec,
		Values:     &policies.ValueCache{},
	}}
}

// decision is credgate's decision of one AdmissionReview, made in process.
type decision struct {
	// Review is the AdmissionReview, as sent to credgate.
	Review []byte
	// OPABody is {"input": <the policy input document credgate evaluated>}: the body of the
	// request to OPA's data API.
	OPABody []byte
	// Found is what credgate's policies found in that document.
	Found policies.Result
	// Decision is the review's outcome; Verdict the response credgate serve must give.
	Decision review.Decision
	Verdict  verdict
}

// decide reviews ar as the pod webhook (webhook.Handler.handle) does — mutating, or with
// validate the validating webhook, which decides only — and records the input document.
func (d *decider) decide(ctx context.Context, ar []byte, validate bool) (*decision, error) {
	var rv admissionv1.AdmissionReview
	if err := json.Unmarshal(ar, &rv); err != nil || rv.Request == nil {
		return nil, fmt.Errorf("read the AdmissionReview: %v", cmp.Or(err, errors.New("no request")))
	}
	req := rv.Request
	pod := &corev1.Pod{}
	if err := kjson.UnmarshalCaseSensitivePreserveInts(req.Object.Raw, pod); err != nil {
		return nil, fmt.Errorf("decode the pod: %w", err)
	}
	d.rec.calls, d.rec.input = 0, nil
	dec, err := d.reviewer.Review(ctx, review.Request{
		Namespace: req.Namespace, Object: pod, Raw: req.Object.Raw,
		Operation: string(req.Operation), Name: req.Name,
		User: req.UserInfo.Username, Groups: req.UserInfo.Groups,
		GVK: corev1.SchemeGroupVersion.WithKind("Pod"), DryRun: req.DryRun != nil && *req.DryRun, DecideOnly: validate,
	})
	if err != nil {
		return nil, fmt.Errorf("review: %w", err)
	}
	if d.rec.calls != 1 {
		return nil, fmt.Errorf("the review evaluated the policies %d times, not once: no single input document to hand OPA", d.rec.calls)
	}
	doc, err := ast.JSON(d.rec.input)
	if err != nil {
		return nil, fmt.Errorf("the policy input as JSON: %w", err)
	}
	body, err := json.Marshal(map[string]any{"input": doc})
	if err != nil {
		return nil, err
	}
	v, err := verdictOf(&dec, validate)
	if err != nil {
		return nil, err
	}
	return &decision{Review: ar, OPABody: body, Found: d.rec.result, Decision: dec, Verdict: v}, nil
}

// verdict is what an admission response says: what the load checks of every response of
// credgate serve.
type verdict struct {
	Allowed bool
	// Code and Message are the refusal's (admission.Denied: 403).
	Code    int32
	Message string
	// Warnings and Patch are the mutating webhook's, when it admits.
	Warnings []string
	Patch    []byte
}

// verdictOf is the response webhook.Handler gives for d: a refusal with every violation; the
// mutating webhook's patch and warnings; the validating webhook's bare admission.
func verdictOf(d *review.Decision, validate bool) (verdict, error) {
	switch {
	case d.Denied():
		return verdict{Code: 403, Message: d.Message()}, nil
	case validate:
		return verdict{Allowed: true}, nil
	}
	patch, err := json.Marshal(d.Patch)
	if err != nil {
		return verdict{}, err
	}
	return verdict{Allowed: true, Warnings: d.Warnings, Patch: patch}, nil
}

// readVerdict reads credgate's response to the AdmissionReview of uid.
func readVerdict(body []byte, uid string) (verdict, error) {
	var rv admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &rv); err != nil {
		return verdict{}, fmt.Errorf("read the AdmissionReview response: %w", err)
	}
	r := rv.Response
	switch {
	case r == nil:
		return verdict{}, errors.New("the AdmissionReview has no response")
	case string(r.UID) != uid:
		return verdict{}, fmt.Errorf("the response is for UID %q, not %q", r.UID, uid)
	}
	v := verdict{Allowed: r.Allowed, Warnings: r.Warnings, Patch: r.Patch}
	if !r.Allowed && r.Result != nil {
		v.Code, v.Message = r.Result.Code, r.Result.Message
	}
	return v, nil
}

// same reports how got differs from want, the patches compared as JSON documents; "" when
// they do not.
func (want verdict) same(got verdict) string {
	var diffs []string
	if got.Allowed != want.Allowed || got.Code != want.Code {
		diffs = append(diffs, fmt.Sprintf("allowed %t (code %d), want %t (code %d)", got.Allowed, got.Code, want.Allowed, want.Code))
	}
	if got.Message != want.Message {
		diffs = append(diffs, fmt.Sprintf("message %q, want %q", got.Message, want.Message))
	}
	if !slices.Equal(got.Warnings, want.Warnings) {
		diffs = append(diffs, fmt.Sprintf("warnings %q, want %q", got.Warnings, want.Warnings))
	}
	if !bytes.Equal(got.Patch, want.Patch) && !sameJSON(got.Patch, want.Patch) {
		diffs = append(diffs, fmt.Sprintf("patch %s, want %s", got.Patch, want.Patch))
	}
	return strings.Join(diffs, "; ")
}

// sameJSON reports whether a and b are the same JSON document; two empty ones are ("null"
// and nothing both say: no patch).
func sameJSON(a, b []byte) bool {
	empty := func(p []byte) bool { p = bytes.TrimSpace(p); return len(p) == 0 || string(p) == "null" }
	if empty(a) || empty(b) {
		return empty(a) && empty(b)
	}
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// validatingReview is the AdmissionReview the validating webhook gets for the pod of ar once
// the mutating webhook admitted it with dec's patch: the object as it will be stored (the API
// server calls validating webhooks after every mutation). A refused pod is sent as it came.
func validatingReview(ar []byte, dec *review.Decision) ([]byte, error) {
	if dec.Denied() || len(dec.Patch) == 0 {
		return ar, nil
	}
	var rv map[string]json.RawMessage
	if err := json.Unmarshal(ar, &rv); err != nil {
		return nil, err
	}
	var req map[string]json.RawMessage
	if err := json.Unmarshal(rv["request"], &req); err != nil {
		return nil, err
	}
	obj, err := mutate.ApplyPatch(req["object"], dec.Patch)
	if err != nil {
		return nil, fmt.Errorf("apply the mutating webhook's patch: %w", err)
	}
	req["object"] = obj
	if rv["request"], err = json.Marshal(req); err != nil {
		return nil, err
	}
	return json.Marshal(rv)
}

// The OPA side.

// peerPackage is the package of the adapter module served to OPA alone; opaPath is its data
// API path, which the load queries.
const (
	peerPackage = "credgate.peer"
	opaPath     = "/v1/data/credgate/peer"
)

// adapterModule is the Rego module that makes OPA decide as credgate does: deny and warn are
// arrays of the deny and warn sets of every built-in rule — rev.Rules(), as `credgate policy
// list` lists them — the union credgate's engine computes (its query's arrays, planQuery in
// policies/engine.go, and the credential-scoped rules it evaluates per Credential and keeps).
// OPA evaluates them all on each input: it keeps nothing between requests. Querying the
// package evaluates both arrays at once.
func adapterModule(rev *policies.Revision) (string, error) {
	sets := map[string][]string{}
	for _, r := range rev.Rules() {
		if !r.Builtin {
			continue
		}
		for _, s := range r.Sets {
			sets[s] = append(sets[s], "data."+r.Package+"."+s)
		}
	}
	if len(sets["deny"]) == 0 {
		return "", errors.New("the built-in policies define no deny set")
	}
	var b strings.Builder
	b.WriteString("# Generated by bench/peer and served to OPA alone: the deny and warn sets of every one of\n")
	b.WriteString("# credgate's built-in rules, arrays of the rules' sets, as credgate's engine binds them.\n")
	b.WriteString("package " + peerPackage + "\n")
	for _, s := range []string{"deny", "warn"} {
		refs := sets[s]
		slices.Sort(refs)
		fmt.Fprintf(&b, "\n%s := [\n", s)
		for _, r := range refs {
			fmt.Fprintf(&b, "\t%s,\n", r)
		}
		b.WriteString("]\n")
	}
	return b.String(), nil
}

// opaResult is the response of OPA's data API for the adapter's package.
type opaResult struct {
	Result *struct {
		Deny, Warn [][]policies.Violation
	} `json:"result"`
}

// readOPA reads the violations OPA found from its response, in the order credgate's engine
// gives them (by rule, credential, message; each once).
func readOPA(body []byte) (deny, warn []policies.Violation, err error) {
	var r opaResult
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, nil, fmt.Errorf("read OPA's response: %w", err)
	}
	if r.Result == nil {
		return nil, nil, fmt.Errorf("OPA's response has no result (is %s loaded?): %.200s", peerPackage, body)
	}
	return normalize(r.Result.Deny), normalize(r.Result.Warn), nil
}

func normalize(sets [][]policies.Violation) []policies.Violation {
	out := slices.Concat(sets...)
	slices.SortFunc(out, func(a, b policies.Violation) int {
		return cmp.Or(strings.Compare(a.Rule, b.Rule), strings.Compare(a.Credential, b.Credential), strings.Compare(a.Message, b.Message))
	})
	return slices.Compact(out)
}

// sameFindings reports how OPA's violations differ from what credgate's policies found; ""
// when they do not.
func sameFindings(found policies.Result, deny, warn []policies.Violation) string {
	var diffs []string
	for _, s := range []struct {
		name      string
		want, got []policies.Violation
	}{{"deny", found.Deny, deny}, {"warn", found.Warn, warn}} {
		if !slices.Equal(s.want, s.got) {
			diffs = append(diffs, fmt.Sprintf("%s: OPA found %v, credgate %v", s.name, s.got, s.want))
		}
	}
	return strings.Join(diffs, "; ")
}

// policyFiles returns the built-in rule files in the repository's policies/ — every .rego
// file but the *_test.rego ones, as credgate embeds them — after checking that they are the
// files this program embeds (so bin/credgate too, which make bench-peer builds from the same
// tree just before): OPA is served the repository's files themselves.
func policyFiles(root string) ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(root, "policies", "*.rego"))
	if err != nil {
		return nil, err
	}
	paths = slices.DeleteFunc(paths, func(p string) bool { return strings.HasSuffix(p, "_test.rego") })
	embedded := policies.Builtin().Modules
	onDisk := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		onDisk["builtin/"+filepath.Base(p)] = string(b)
	}
	if !maps.Equal(onDisk, embedded) {
		return nil, fmt.Errorf("the policies in %s differ from those this program was built with (edited since?): run it again",
			filepath.Join(root, "policies"))
	}
	return paths, nil
}
