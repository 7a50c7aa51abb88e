package policies

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/profiler"
	"github.com/open-policy-agent/opa/v1/rego"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/credential"
	"github.com/credgate/credgate/workload"
)

// exampleInput is the policy input for the pod the Job controller creates from
// examples/training-job.yaml (an init container and two containers, three credentials from
// examples/credentials.yaml), as the webhook builds it for the pod's CREATE.
func exampleInput(b testing.TB) *Input {
	b.Helper()
	var job batchv1.Job
	readYAML(b, filepath.Join("..", "examples", "training-job.yaml"), &job)
	tmpl := job.Spec.Template
	pod := corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: *tmpl.ObjectMeta.DeepCopy(),
		Spec:       *tmpl.Spec.DeepCopy(),
	}
	pod.Name, pod.Namespace = job.Name+"-x7k2p", job.Namespace
	pod.Labels = map[string]string{"batch.kubernetes.io/job-name": job.Name, "job-name": job.Name}
	workload.CopyCredentialLabels(job.Labels, &pod.Labels)
	raw, err := json.Marshal(&pod)
	if err != nil {
		b.Fatal(err)
	}
	t, err := workload.PodTemplate(&pod)
	if err != nil {
		b.Fatal(err)
	}
	names, _ := workload.Requested(t.Meta.Labels)
	targets, problem := workload.TargetContainers(t)
	if problem != "" {
		b.Fatal(problem)
	}
	creds := exampleCredentials(b)
	in := &Input{
		Operation: "CREATE", Namespace: pod.Namespace, Name: pod.Name,
		User: "system:serviceaccount:kube-system:job-controller", Groups: []string{"system:serviceaccounts", "system:authenticated"},
		Version: "v1", Kind: "Pod", Object: raw, PodLabels: pod.Labels, Targets: targets,
		NamespaceLabels: map[string]string{"kubernetes.io/metadata.name": pod.Namespace},
		Cache:           &ValueCache{},
	}
	for _, n := range names {
		c, ok := creds[n]
		if !ok {
			b.Fatalf("examples/credentials.yaml has no credential %s", n)
		}
		r, err := credential.Resolve(c)
		if err != nil {
			b.Fatal(err)
		}
		in.Credentials = append(in.Credentials, r)
	}
	return in
}

func exampleCredentials(b testing.TB) map[string]*v1alpha1.Credential {
	f, err := os.Open(filepath.Join("..", "examples", "credentials.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	out := map[string]*v1alpha1.Credential{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			b.Fatal(err)
		}
		var c v1alpha1.Credential
		if err := yaml.Unmarshal(doc, &c); err != nil {
			b.Fatal(err)
		}
		if c.Kind == "Credential" {
			// As the API server stores it: the input's value cache keys on these.
			c.UID, c.ResourceVersion = types.UID("uid-"+c.Name), "1"
			c.Status.Conditions = append(c.Status.Conditions, metav1.Condition{
				Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "SecretFound"})
			out[c.Name] = &c
		}
	}
}

func readYAML(b testing.TB, path string, into any) {
	b.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := yaml.Unmarshal(data, into); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkPolicyInput measures building the input document: parsing the object's JSON and
// assembling the rest as OPA values, with the credentials' values cached (as the webhook
// serves) and built afresh.
func BenchmarkPolicyInput(b *testing.B) {
	for _, cached := range []bool{true, false} {
		b.Run(fmt.Sprintf("cached=%t", cached), func(b *testing.B) {
			in := exampleInput(b)
			if !cached {
				in.Cache = nil
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := in.Value(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPolicyEvaluate measures evaluating the built-in policies on the example training
// pod, and reports the median and 99th percentile of single evaluations.
//
//   - parsed: the input built as an ast.Value (Input.Value) and passed with EvalParsedInput,
//     as credgate does; the build is inside the loop.
//   - EvalInput: the same document as native Go values (encoding/json's map[string]any for
//     the object, nested maps for the rest), built inside the loop and passed with EvalInput,
//     which converts it on every evaluation.
//   - prebuilt: evaluation alone, of an input built once.
//   - engine: the same through Engine.Evaluate (its timeout, the recent inputs it keeps).
func BenchmarkPolicyEvaluate(b *testing.B) {
	ctx := context.Background()
	rev, err := Load(ctx, "")
	if err != nil {
		b.Fatal(err)
	}
	in := exampleInput(b)
	value, err := in.Value()
	if err != nil {
		b.Fatal(err)
	}
	res, err := rev.Evaluate(ctx, value)
	if err != nil {
		b.Fatal(err)
	}
	if len(res.Deny) > 0 || len(res.Warn) != 1 { // static-credentials warns of the AWS keys
		b.Fatalf("the example pod is not admitted with one warning: %+v", res)
	}
	native, err := ast.JSON(value)
	if err != nil {
		b.Fatal(err)
	}
	rest := native.(map[string]any)
	set := rev.sets.begin(value) // (res above kept the credential-only rules' values)
	delete(rest, "object")
	delete(rest, "pod")

	b.Run("parsed", func(b *testing.B) {
		timed(b, func() {
			v, err := in.Value()
			if err != nil {
				b.Fatal(err)
			}
			if _, err := rev.Evaluate(ctx, v); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("EvalInput", func(b *testing.B) {
		timed(b, func() {
			var object map[string]any
			if err := json.Unmarshal(in.Object, &object); err != nil {
				b.Fatal(err)
			}
			doc := make(map[string]any, len(rest)+2)
			for k, v := range rest {
				doc[k] = v
			}
			doc["object"], doc["pod"] = object, object
			// With the credential-set rules' values kept, as Evaluate has them.
			if _, err := rev.prepared.Eval(ctx, rego.EvalInput(doc), rego.EvalVirtualCache(set.cache(rev.targetsOf(value)))); err != nil {
				b.Fatal(err)
			}
		})
	})
	b.Run("prebuilt", func(b *testing.B) {
		timed(b, func() {
			if _, err := rev.Evaluate(ctx, value); err != nil {
				b.Fatal(err)
			}
		})
		b.ReportMetric(float64(steps(b, rev, value)), "steps/op")
	})
	// engine: the same through the Engine, as the webhook evaluates: with its timeout, and
	// keeping recent inputs for the canary.
	b.Run("engine", func(b *testing.B) {
		e := NewEngine(rev)
		timed(b, func() {
			if _, err := e.Evaluate(ctx, value); err != nil {
				b.Fatal(err)
			}
		})
	})
}

// steps counts the expressions OPA evaluates, and re-evaluates on backtracking, to evaluate
// input once, as Evaluate does after the first time (the credential-only rules' values kept):
// what an evaluation costs, independent of the machine's speed.
func steps(b *testing.B, rev *Revision, input ast.Value) int {
	p := profiler.New()
	if _, err := rev.Evaluate(context.Background(), input); err != nil {
		b.Fatal(err)
	}
	if _, err := rev.prepared.Eval(context.Background(), append(evalOptions(input, rev.sets.begin(input), rev.targetsOf(input)), rego.EvalQueryTracer(p))...); err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, s := range p.ReportTopNResults(-1, []string{"file", "line"}) {
		n += s.NumEval + s.NumRedo
	}
	return n
}

// timed runs fn b.N times and reports, beside ns/op, the median and 99th percentile of the
// single runs.
func timed(b *testing.B, fn func()) {
	b.ReportAllocs()
	var runs []time.Duration
	for b.Loop() {
		start := time.Now()
		fn()
		runs = append(runs, time.Since(start))
	}
	slices.Sort(runs)
	if len(runs) == 0 {
		return
	}
	b.ReportMetric(float64(runs[len(runs)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(runs[len(runs)*99/100].Nanoseconds()), "p99-ns")
}
