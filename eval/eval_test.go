package eval_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/credgate/credgate/eval"
	"github.com/credgate/credgate/internal/app"
	"github.com/credgate/credgate/policies"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

func TestRun(t *testing.T) {
	const examples = "../examples/"
	tests := []struct {
		name        string
		workloads   []string
		credentials []string
		wantCode    int
		// wantStderr lists substrings of the decision output.
		wantStderr []string
		// golden compares stdout with testdata/golden/<name>.yaml.
		golden       bool
		enforcement  policies.Enforcement
		assumeMinted bool
		// notStderr lists substrings the decision output must not have.
		notStderr []string
	}{
		{name: "examples-training-job", workloads: []string{examples + "training-job.yaml"},
			credentials: []string{examples + "credentials.yaml"}, wantCode: eval.ExitAdmitted, golden: true,
			wantStderr: []string{"admitted Job ml-team/train-llm: its pods get aws-data, hf, wandb, injected when each is created",
				"warning: Job ml-team/train-llm: [static-credentials] credential aws-data gives the pod long-lived keys: AWS (AWS_SECRET_ACCESS_KEY"}},
		{name: "policy-refusal", workloads: []string{"testdata/conflicting-job.yaml"},
			credentials: []string{examples + "credentials.yaml"}, wantCode: eval.ExitRefused,
			wantStderr: []string{"refused Job ml-team/train-conflicts (policy sha256:",
				`[conflicting-env] container "trainer" already sets HF_TOKEN, which credential hf injects`,
				"[multiple-cloud-identities] the pod would hold 2 AWS identities (credential aws-data, credential wasabi)",
				"[conflicting-env] credentials aws-data and wasabi both set AWS_ACCESS_KEY_ID"}},
		{name: "policy-refusal-audited", workloads: []string{"testdata/conflicting-job.yaml"},
			credentials: []string{examples + "credentials.yaml"}, wantCode: eval.ExitAdmitted,
			enforcement: policies.Enforcement{"conflicting-env": policies.ActionAudit, "multiple-cloud-identities": policies.ActionWarn},
			wantStderr: []string{"audit: Job ml-team/train-conflicts: [conflicting-env]",
				"warning: Job ml-team/train-conflicts: [multiple-cloud-identities]", "admitted Job ml-team/train-conflicts"}},
		{name: "examples-refused-job", workloads: []string{examples + "refused-job.yaml"},
			credentials: []string{examples + "credentials.yaml"}, wantCode: eval.ExitRefused,
			wantStderr: []string{"refused Job ml-team/train-refused", "[invalid-credential-label]",
				`[unknown-credential] credential "openai" does not exist in namespace "ml-team" (it has: aws-data, aws-irsa, azure-blob,`}},
		{name: "mixed-kinds", workloads: []string{"testdata/workloads-mixed.yaml"},
			credentials: []string{examples + "credentials.yaml"}, wantCode: eval.ExitAdmitted, golden: true,
			wantStderr: []string{"admitted Deployment ml-team/notebook: its pods get hf, injected when each is created", "skipped Service",
				"admitted CronJob ml-team/nightly-eval: its pods get eval-config, injected when each is created"}},
		// What an earlier credgate eval printed, applied: the Deployment's template comes out
		// with its labels alone, and a pod comes out injected afresh.
		{name: "earlier-injection", workloads: []string{"testdata/earlier-injection.yaml"},
			credentials: []string{examples + "credentials.yaml"}, wantCode: eval.ExitAdmitted, golden: true,
			wantStderr: []string{"warning: Deployment ml-team/notebook: this Deployment's pod template carries an injection of hf by an earlier version of credgate",
				"credgate removed 2 variables and its annotation",
				"admitted Deployment ml-team/notebook: its pods get hf, injected when each is created",
				"warning: Pod ml-team/notebook-7d9f8c6b5-x2k4p: this pod carries an injection of hf by an earlier version of credgate",
				"admitted Pod ml-team/notebook-7d9f8c6b5-x2k4p: injected hf"}},
		{name: "not-minted-yet", workloads: []string{"testdata/s3-data-pod.yaml"},
			credentials: []string{examples + "credentials.yaml"}, wantCode: eval.ExitRefused,
			wantStderr: []string{"[credential-not-ready] credential s3-data has no temporary credentials yet"}},
		{name: "assume-minted", workloads: []string{"testdata/s3-data-pod.yaml"}, assumeMinted: true,
			credentials: []string{examples + "credentials.yaml"}, wantCode: eval.ExitAdmitted,
			wantStderr: []string{"admitted Pod ml-team/reader: injected s3-data"}},
		// The same for gcp mode impersonation: an access token credgate refresher mints, no key.
		{name: "impersonation-not-minted-yet", workloads: []string{"testdata/gcs-token-pod.yaml"},
			credentials: []string{"testdata/keyless-credentials.yaml"}, wantCode: eval.ExitRefused,
			wantStderr: []string{"[credential-not-ready] credential gcs-token has no access token yet: credgate refresher has not minted an access token for service account trainer@ml-project.iam.gserviceaccount.com"}},
		{name: "impersonation-assume-minted", workloads: []string{"testdata/gcs-token-pod.yaml"}, assumeMinted: true,
			credentials: []string{"testdata/keyless-credentials.yaml"}, wantCode: eval.ExitAdmitted,
			wantStderr: []string{"admitted Pod ml-team/gcs-reader: injected gcs-token"},
			notStderr:  []string{"static-credentials", "warning"}},
		{name: "missing-secret-key", workloads: []string{"testdata/wandb-pod.yaml"},
			credentials: []string{"testdata/missing-key.yaml"}, wantCode: eval.ExitRefused,
			wantStderr: []string{`[missing-secret-key] Secret "wandb-secret" of credential wandb has no key "api-key" (read by WANDB_API_KEY)`}},
		{name: "invalid-credentials", workloads: []string{"testdata/wandb-pod.yaml"},
			credentials: []string{"testdata/invalid-credentials.yaml"}, wantCode: eval.ExitBadInput,
			wantStderr: []string{"needs spec.aws.endpoint", `spec.env[0].name: Invalid value: "9LIVES"`,
				"set exactly one of key", `spec.files.items[0].path: Invalid value: "../etc/passwd": path may not contain`}},
		{name: "unknown-field", workloads: []string{"testdata/unknown-field.yaml"},
			credentials: []string{examples + "credentials.yaml"}, wantCode: eval.ExitBadInput,
			wantStderr: []string{`unknown field "spec.template.spec.containers[0].enviroment"`}}, //nolint:misspell // the typo is the input under test

		{name: "malformed-yaml", workloads: []string{"testdata/malformed.yaml"},
			credentials: []string{examples + "credentials.yaml"}, wantCode: eval.ExitBadInput,
			wantStderr: []string{"testdata/malformed.yaml"}},
		{name: "no-objects", workloads: []string{os.DevNull},
			credentials: []string{examples + "credentials.yaml"}, wantCode: eval.ExitBadInput,
			wantStderr: []string{"no objects"}},
	}
	scheme, err := app.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	rev, err := policies.Load(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			e := &eval.Evaluator{Namespace: "default", Scheme: scheme, Out: &stdout, Err: &stderr,
				Policy: policies.NewEngine(rev), Enforcement: tt.enforcement, AssumeMinted: tt.assumeMinted}
			code := e.Run(t.Context(), inputs(t, tt.workloads), inputs(t, tt.credentials))
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			for _, want := range tt.wantStderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
			for _, unwanted := range tt.notStderr {
				if strings.Contains(stderr.String(), unwanted) {
					t.Errorf("stderr has %q:\n%s", unwanted, stderr.String())
				}
			}
			for _, secret := range []string{"placeholder-wandb-api-key", "hf_placeholder", "SENTINEL-wandb-value", "placeholder-secret-access-key"} {
				if strings.Contains(stdout.String()+stderr.String(), secret) {
					t.Errorf("output contains the secret value %q", secret)
				}
			}
			if tt.wantCode == eval.ExitRefused && stdout.Len() > 0 {
				t.Errorf("a refused object was printed:\n%s", stdout.String())
			}
			if tt.golden {
				compareGolden(t, filepath.Join("testdata", "golden", tt.name+".yaml"), stdout.Bytes())
			}
		})
	}
}

func inputs(t *testing.T, paths []string) []eval.Input {
	t.Helper()
	var in []eval.Input
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		in = append(in, eval.Input{Name: p, Reader: f})
	}
	return in
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden file (run make golden to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("stdout differs from %s (-want +got):\n%s", path, diff)
	}
}
