package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/test/cluster"
	"github.com/credgate/credgate/workload"
)

// namespace is the namespace of every sample and Credential.
const namespace = "ml-team"

// trainingPod is the AdmissionReview the samples are made from, relative to the repository:
// the webhook's own benchmark fixture.
const trainingPod = "webhook/testdata/pod-training.json"

// sample is one AdmissionReview the load sends: the training pod of trainingPod
// (a pod the Job controller creates: an init container downloading data, a trainer, a metrics
// sidecar) requesting other credentials, and what credgate must decide of it.
type sample struct {
	Name string
	// Weight is how many of every mixCycle requests of the load are this sample.
	Weight int
	// Credentials are the credentials the pod's labels request.
	Credentials []string
	// Env is a variable the trainer container sets besides its own, when not empty: name=value.
	Env string
	// Denied are the rule ids that must refuse it (none: admitted, with a patch).
	Denied []string
}

// samples are the reviews of the load, admitted training pods first. Most admission traffic
// is admitted: the refused samples are one request in ten each.
var samples = []sample{
	// Three credentials with variables from Secrets; the AWS keys are long-lived, so
	// static-credentials warns.
	{Name: "training", Weight: 4, Credentials: []string{"aws", "hf", "wandb"}},
	// Three credentials, one of them a mounted file, no warning.
	{Name: "training-files", Weight: 3, Credentials: []string{"hf", "kaggle", "wandb"}},
	{Name: "admin-scoped", Weight: 1, Credentials: []string{"aws-admin", "hf", "wandb"}, Denied: []string{"admin-scoped-credential"}},
	// The trainer already sets a variable the hf credential injects.
	{Name: "conflicting", Weight: 1, Credentials: []string{"aws", "hf", "wandb"}, Env: "HF_TOKEN=hf_from_the_pod_spec",
		Denied: []string{"conflicting-env"}},
	{Name: "unknown", Weight: 1, Credentials: []string{"hf", "openai", "wandb"}, Denied: []string{"unknown-credential"}},
}

// mixCycle is the sum of the samples' weights.
func mixCycle() int {
	n := 0
	for _, s := range samples {
		n += s.Weight
	}
	return n
}

// mix is the order the load sends the samples in, one cycle: each sample as often as its
// weight, spread out (smooth weighted round robin), so that refusals never come in a run.
func mix() []int {
	current := make([]int, len(samples))
	total := mixCycle()
	order := make([]int, 0, total)
	for range total {
		best := 0
		for i, s := range samples {
			current[i] += s.Weight
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		order = append(order, best)
	}
	return order
}

// mixText describes the mix for the report.
func mixText() string {
	parts := make([]string, len(samples))
	for i, s := range samples {
		what := "admitted"
		if len(s.Denied) > 0 {
			what = "refused: " + strings.Join(s.Denied, ", ")
		}
		parts[i] = fmt.Sprintf("%d %s (%s; %s)", s.Weight, s.Name, strings.Join(s.Credentials, "+"), what)
	}
	return fmt.Sprintf("of every %d requests: %s", mixCycle(), strings.Join(parts, ", "))
}

// review returns the sample's AdmissionReview: the base review with its own UID, the pod's
// credential labels replaced by the sample's, the sample's variable added to the trainer and,
// withoutOwner, no ownerReferences (a pod created directly, not by the Job controller). The
// object is written compactly, as the API server sends it.
func (s sample) review(base []byte, i int, withoutOwner bool) ([]byte, error) {
	var ar map[string]any
	d := json.NewDecoder(bytes.NewReader(base))
	d.UseNumber()
	if err := d.Decode(&ar); err != nil {
		return nil, fmt.Errorf("sample %s: %w", s.Name, err)
	}
	req, _ := ar["request"].(map[string]any)
	obj, _ := req["object"].(map[string]any)
	meta, _ := obj["metadata"].(map[string]any)
	labels, _ := meta["labels"].(map[string]any)
	spec, _ := obj["spec"].(map[string]any)
	containers, _ := spec["containers"].([]any)
	if labels == nil || len(containers) == 0 {
		return nil, fmt.Errorf("sample %s: the base review has no pod labels or containers", s.Name)
	}
	req["uid"] = sampleUID(i)
	if withoutOwner {
		delete(meta, "ownerReferences")
	}
	maps.DeleteFunc(labels, func(k string, _ any) bool { return strings.HasPrefix(k, workload.LabelPrefix) })
	for _, c := range s.Credentials {
		labels[workload.LabelPrefix+c] = "true"
	}
	if s.Env != "" {
		name, value, _ := strings.Cut(s.Env, "=")
		trainer, _ := containers[0].(map[string]any)
		env, _ := trainer["env"].([]any)
		trainer["env"] = append(env, map[string]any{"name": name, "value": value})
	}
	return json.Marshal(ar)
}

// sampleUID is the UID of the i-th sample's AdmissionReview.
func sampleUID(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1) }

// ownerJob is the name of the Job the base review's pod says created it ("" when none).
func ownerJob(base []byte) (string, error) {
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(base, &ar); err != nil || ar.Request == nil {
		return "", fmt.Errorf("read the base review: %v", cmp.Or(err, errors.New("no request")))
	}
	var pod metav1.PartialObjectMetadata
	if err := json.Unmarshal(ar.Request.Object.Raw, &pod); err != nil {
		return "", fmt.Errorf("read the base review's pod: %w", err)
	}
	if ref := metav1.GetControllerOf(&pod); ref != nil && ref.Kind == "Job" {
		return ref.Name, nil
	}
	return "", nil
}

// readCredentials reads the Credentials of testdata/credentials.yaml.
func readCredentials(dir string) ([]*v1alpha1.Credential, error) {
	docs, err := cluster.Documents(filepath.Join(dir, "credentials.yaml"))
	if err != nil {
		return nil, err
	}
	var creds []*v1alpha1.Credential
	for _, doc := range docs {
		c := &v1alpha1.Credential{}
		if err := yaml.UnmarshalStrict(doc, c); err != nil {
			return nil, fmt.Errorf("credentials.yaml: %w", err)
		}
		if c.Name != "" {
			creds = append(creds, c)
		}
	}
	return creds, nil
}

// checkSamples reports a sample requesting a credential that is not in creds, other than the
// unknown one: the samples and the file would have drifted apart.
func checkSamples(creds []*v1alpha1.Credential) error {
	have := map[string]bool{}
	for _, c := range creds {
		have[c.Name] = true
	}
	for _, s := range samples {
		for _, n := range s.Credentials {
			if !have[n] && !slices.Contains(s.Denied, "unknown-credential") {
				return fmt.Errorf("sample %s requests credential %s, which testdata/credentials.yaml does not define", s.Name, n)
			}
		}
	}
	return nil
}
