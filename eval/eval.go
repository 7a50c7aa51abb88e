package eval

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/open-policy-agent/opa/v1/ast"
	gomodjsonpatch "gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/yaml"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
	"github.com/credgate/credgate/policies"
	"github.com/credgate/credgate/review"
	"github.com/credgate/credgate/workload"
)

// Exit codes of credgate eval.
const (
	ExitAdmitted = 0
	ExitRefused  = 1
	ExitBadInput = 2
)

// RuleMissingSecretKey refuses, offline only, a credential whose Secret (given in the
// credentials file) lacks a key the injection reads: the cluster would admit the pod, which
// would then fail to start.
const RuleMissingSecretKey = "missing-secret-key"

// Input is one named stream of YAML documents.
type Input struct {
	Name   string
	Reader io.Reader
}

// Evaluator evaluates workloads offline.
type Evaluator struct {
	// Namespace is used for objects that name none (like kubectl's default namespace).
	Namespace string
	// Scheme knows the built-in kinds and the credgate.dev API.
	Scheme *runtime.Scheme
	// Policy and Enforcement decide, as in the webhook.
	Policy      review.Evaluator
	Enforcement policies.Enforcement
	// Out receives the objects as YAML; Err the decisions and warnings.
	Out, Err io.Writer
	// AssumeMinted evaluates refreshed Credentials (aws assumeRole, gcp impersonation) that
	// carry no Ready condition as if the refresher had minted their credentials. Without it they are refused, as the cluster
	// refuses them until then (credential-not-ready).
	AssumeMinted bool
	// Explain, when set, is asked, after each decision the policies took part in, what made
	// each violation fire (Revision.Explain on the input the policies evaluated); its answer
	// is written to Err: each firing's rule, credential, set, file and line, and the
	// expressions of the rule body that held. Only names and the policies' source text are
	// written, never a value of the input.
	Explain func(ctx context.Context, input ast.Value) ([]policies.Firing, error)
}

// recordingPolicy remembers the input the policies last evaluated, for Explain.
type recordingPolicy struct {
	review.Evaluator
	input ast.Value
}

func (p *recordingPolicy) Evaluate(ctx context.Context, input ast.Value) (policies.Result, error) {
	p.input = input
	return p.Evaluator.Evaluate(ctx, input)
}

// Run evaluates every workload of workloads against the Credentials (and Secrets) of creds and
// returns the exit code: ExitBadInput if any input is malformed, else ExitRefused if any
// workload is refused, else ExitAdmitted.
func (e *Evaluator) Run(ctx context.Context, workloads []Input, creds []Input) int {
	decoder := serializer.NewCodecFactory(e.Scheme, serializer.EnableStrict).UniversalDeserializer()
	store, secrets, namespaces, err := e.loadCredentials(decoder, creds)
	if err != nil {
		fmt.Fprintf(e.Err, "error: %v\n", err)
		return ExitBadInput
	}
	var docs []document
	for _, in := range workloads {
		d, err := readDocuments(in.Reader, in.Name)
		if err != nil {
			fmt.Fprintf(e.Err, "error: %v\n", err)
			return ExitBadInput
		}
		docs = append(docs, d...)
	}
	if len(docs) == 0 {
		fmt.Fprintln(e.Err, "error: no objects in the workload input")
		return ExitBadInput
	}

	reviewer := &review.Reviewer{Store: store, Namespaces: namespaces, Policy: e.Policy, Enforcement: e.Enforcement}
	var rec *recordingPolicy
	if e.Explain != nil {
		rec = &recordingPolicy{Evaluator: e.Policy}
		reviewer.Policy = rec
	}
	code, printed := ExitAdmitted, 0
	for _, d := range docs {
		out, c := e.one(ctx, reviewer, decoder, secrets, d, rec)
		code = max(code, c)
		if out == nil {
			continue
		}
		if printed > 0 {
			fmt.Fprintln(e.Out, "---")
		}
		printed++
		if _, err := e.Out.Write(out); err != nil {
			fmt.Fprintf(e.Err, "error: write output: %v\n", err)
			return ExitBadInput
		}
	}
	return code
}

// one reviews a single document and returns it as YAML (the patched object when admitted, the
// submitted one when there is nothing to inject, nothing when refused) with its exit code.
func (e *Evaluator) one(ctx context.Context, r *review.Reviewer, decoder runtime.Decoder, secrets secretIndex, d document, rec *recordingPolicy) ([]byte, int) {
	obj, _, err := decoder.Decode(d.json, nil, nil)
	if err != nil && !runtime.IsNotRegisteredError(err) {
		fmt.Fprintf(e.Err, "error: %s: %v\n", d.source, err)
		return nil, ExitBadInput
	}
	if k := workload.KindOf(schema.FromAPIVersionAndKind(d.meta.APIVersion, d.meta.Kind)); obj == nil && k != nil && k.Custom() {
		// A custom workload credgate knows (a PyTorchJob, a RayJob): read without Go types.
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(d.json); err != nil {
			fmt.Fprintf(e.Err, "error: %s: %v\n", d.source, err)
			return nil, ExitBadInput
		}
		obj = u
	}
	if _, err := workload.PodTemplate(obj); obj == nil || errors.Is(err, workload.ErrUnsupportedKind) {
		fmt.Fprintf(e.Err, "skipped %s %s: credgate does not admit this kind; printed unchanged\n", d.meta.Kind, d.source)
		return mustYAML(d.json), ExitAdmitted
	}
	accessor := obj.(interface {
		GetNamespace() string
		GetName() string
	})
	ns := accessor.GetNamespace()
	if ns == "" {
		ns = e.Namespace
	}
	what := fmt.Sprintf("%s %s/%s", d.meta.Kind, ns, accessor.GetName())

	gvk := schema.FromAPIVersionAndKind(d.meta.APIVersion, d.meta.Kind)
	if rec != nil {
		rec.input = nil
	}
	dec, err := r.Review(ctx, review.Request{Namespace: ns, Object: obj, Raw: d.json,
		Operation: "CREATE", Name: accessor.GetName(), User: "credgate-eval", GVK: gvk})
	if err != nil {
		// Offline, every failure is the input's: a malformed object or a Credential file.
		fmt.Fprintf(e.Err, "error: %s: %v\n", what, err)
		return nil, ExitBadInput
	}
	if rec != nil {
		defer func() { e.explain(ctx, what, rec.input, dec) }() // after the decision, and the offline checks
	}
	if !dec.Denied() {
		dec.Violations = secrets.check(ns, dec.Resolved)
	}
	if dec.Denied() {
		fmt.Fprintf(e.Err, "refused %s (policy %s):\n", what, shortRevision(dec.PolicyRevision))
		for _, v := range dec.Violations {
			fmt.Fprintf(e.Err, "  [%s] %s\n", v.Rule, v.Message)
		}
		// A refused object is not printed: piping the output to kubectl must not apply it.
		return nil, ExitRefused
	}
	for _, w := range dec.Warnings {
		fmt.Fprintf(e.Err, "warning: %s: %s\n", what, w)
	}
	for _, v := range dec.Audited {
		fmt.Fprintf(e.Err, "audit: %s: [%s] %s\n", what, v.Rule, v.Message)
	}
	patched, err := applyAsAPIServer(d.json, dec.Patch)
	if err != nil {
		fmt.Fprintf(e.Err, "error: %s: %v\n", what, err)
		return nil, ExitBadInput
	}
	switch {
	case !dec.Mutated:
		fmt.Fprintf(e.Err, "admitted %s: no credentials requested\n", what)
	case workload.IsPod(obj):
		fmt.Fprintf(e.Err, "admitted %s: injected %s\n", what, strings.Join(dec.Credentials, ", "))
	default:
		// A workload's pod template only gets the credential labels: each pod gets the
		// Credentials as they are when it is created.
		fmt.Fprintf(e.Err, "admitted %s: its pods get %s, injected when each is created\n", what, strings.Join(dec.Credentials, ", "))
	}
	return mustYAML(patched), ExitAdmitted
}

// explain writes what made each violation of the policies' evaluation of input fire (nothing
// evaluated: input is nil), for what, to Err; and which of dec's violations no policy rule
// made (credgate's own checks, before the policies or offline).
func (e *Evaluator) explain(ctx context.Context, what string, input ast.Value, dec review.Decision) {
	var firings []policies.Firing
	if input != nil {
		var err error
		if firings, err = e.Explain(ctx, input); err != nil {
			fmt.Fprintf(e.Err, "explain %s: %v\n", what, err)
			return
		}
	}
	fired := map[string]bool{}
	for _, f := range firings {
		fired[f.Rule] = true
	}
	var own []string
	for _, v := range slices.Concat(dec.Violations, dec.Audited) {
		if !fired[v.Rule] && !slices.Contains(own, v.Rule) {
			own = append(own, v.Rule)
		}
	}
	switch {
	case input == nil && len(own) == 0:
		fmt.Fprintf(e.Err, "explain %s: the policies did not run (no credentials requested)\n", what)
		return
	case len(firings) == 0 && len(own) == 0:
		fmt.Fprintf(e.Err, "explain %s: no policy rule fired\n", what)
		return
	}
	fmt.Fprintf(e.Err, "explain %s: what made each rule fire\n", what)
	for _, rule := range own {
		fmt.Fprintf(e.Err, "  [%s] credgate's own check, not a policy rule\n", rule)
	}
	if input == nil {
		fmt.Fprintln(e.Err, "  (refused before the policies ran)")
	}
	for _, f := range firings {
		cred := ""
		if f.Credential != "" {
			cred = " " + f.Credential
		}
		times := ""
		if f.Count > 1 {
			times = fmt.Sprintf(" (%d violations)", f.Count)
		}
		fmt.Fprintf(e.Err, "  [%s]%s, %s at %s:%d%s, because:\n", f.Rule, cred, f.Set, f.File, f.Line, times)
		width := 0
		for _, x := range f.Exprs {
			width = max(width, len(fmt.Sprintf("%s:%d", x.File, x.Line)))
		}
		for _, x := range f.Exprs {
			fmt.Fprintf(e.Err, "    %-*s  %s\n", width, fmt.Sprintf("%s:%d", x.File, x.Line), clip(x.Text, 100))
		}
	}
}

// clip cuts s to n characters, marking the cut.
func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// applyAsAPIServer applies the webhook's JSON patch to the submitted document, as the API
// server does.
func applyAsAPIServer(original []byte, ops []gomodjsonpatch.Operation) ([]byte, error) {
	if len(ops) == 0 {
		return original, nil
	}
	raw, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("encode patch: %w", err)
	}
	p, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		return nil, fmt.Errorf("decode patch: %w", err)
	}
	out, err := p.Apply(original)
	if err != nil {
		return nil, fmt.Errorf("apply patch: %w", err)
	}
	return out, nil
}

// shortRevision abbreviates a policy revision for messages: "sha256:1a2b3c4d5e6f".
func shortRevision(r string) string {
	if len(r) > len("sha256:")+12 {
		return r[:len("sha256:")+12]
	}
	return r
}

func mustYAML(j []byte) []byte {
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		// j came from a YAML document or json.Marshal; it is valid JSON.
		return j
	}
	return y
}

// secretIndex holds the Secrets of the credentials input, by namespace and name.
type secretIndex map[string]map[string]*corev1.Secret

// check returns a violation for every key the resolved credentials read that their Secret,
// when given, does not have.
func (s secretIndex) check(ns string, creds []credential.Resolved) []review.Violation {
	var out []review.Violation
	for _, c := range creds {
		sec, ok := s[ns][c.SecretName]
		if !ok {
			continue
		}
		has := func(k string) bool {
			_, a := sec.Data[k]
			_, b := sec.StringData[k]
			return a || b
		}
		var missing []string
		for _, env := range c.Env {
			if env.FromSecret() && !env.Optional && !has(env.Key) {
				missing = append(missing, fmt.Sprintf("%q (read by %s)", env.Key, env.Name))
			}
		}
		if c.Files != nil {
			for _, it := range c.Files.Items {
				if !has(it.Key) {
					missing = append(missing, fmt.Sprintf("%q (mounted as %s)", it.Key, it.Path))
				}
			}
		}
		if c.ImagePullSecret && !has(corev1.DockerConfigJsonKey) {
			missing = append(missing, fmt.Sprintf("%q (read as an image-pull secret)", corev1.DockerConfigJsonKey))
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			out = append(out, review.Violation{Rule: RuleMissingSecretKey, Credential: c.Name, Message: fmt.Sprintf(
				"Secret %q of credential %s has no key %s; the cluster would admit the pod but it would fail to start",
				c.SecretName, c.Name, strings.Join(missing, ", "))})
		}
	}
	return out
}

// assumeMinted gives a refreshed Credential (aws assumeRole, gcp impersonation) without a
// Ready condition the status the refresher would write once it minted its credentials.
func assumeMinted(c *v1alpha1.Credential) {
	if !credential.Refreshed(&c.Spec) || meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionReady) != nil {
		return
	}
	c.Status.SecretName = credential.ManagedSecretName(c)
	meta.SetStatusCondition(&c.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue,
		Reason: "Minted", Message: "assumed as if minted (credgate eval --assume-minted)", ObservedGeneration: c.Generation})
}

// loadCredentials reads the Credentials, Secrets and Namespaces of the credentials inputs. An
// invalid Credential is bad input, with every problem listed.
func (e *Evaluator) loadCredentials(decoder runtime.Decoder, inputs []Input) (credential.Store, secretIndex, review.StaticNamespaces, error) {
	var creds []*v1alpha1.Credential
	secrets := secretIndex{}
	namespaces := review.StaticNamespaces{}
	var problems []string
	for _, in := range inputs {
		docs, err := readDocuments(in.Reader, in.Name)
		if err != nil {
			return nil, nil, nil, err
		}
		for _, d := range docs {
			obj, _, err := decoder.Decode(d.json, nil, nil)
			if err != nil {
				return nil, nil, nil, fmt.Errorf("%s: %w", d.source, err)
			}
			switch o := obj.(type) {
			case *corev1.Namespace:
				namespaces[o.Name] = o.Labels
			case *v1alpha1.Credential:
				if o.Namespace == "" {
					o.Namespace = e.Namespace
				}
				for _, p := range credential.ValidateJSON(d.json) {
					problems = append(problems, fmt.Sprintf("%s: Credential %s: %s", d.source, o.Name, p))
				}
				if e.AssumeMinted {
					assumeMinted(o)
				}
				creds = append(creds, o)
			case *corev1.Secret:
				if o.Namespace == "" {
					o.Namespace = e.Namespace
				}
				if secrets[o.Namespace] == nil {
					secrets[o.Namespace] = map[string]*corev1.Secret{}
				}
				secrets[o.Namespace][o.Name] = o
			default:
				return nil, nil, nil, fmt.Errorf("%s: %s is not a Credential, Secret or Namespace", d.source, d.meta.Kind)
			}
		}
	}
	if len(problems) > 0 {
		return nil, nil, nil, fmt.Errorf("invalid credentials:\n  %s", strings.Join(problems, "\n  "))
	}
	return credential.NewStaticStore(e.Namespace, creds...), secrets, namespaces, nil
}
