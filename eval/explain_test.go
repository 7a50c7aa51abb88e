package eval_test

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/credgate/credgate/eval"
	"github.com/credgate/credgate/internal/app"
	"github.com/credgate/credgate/policies"
)

// TestExplain: with Explain, each decision is followed on stderr by what made each rule fire
// — the rule's file and line, its set, and its body's expressions with theirs — for the
// built-in rules and the user's; stdout is unchanged, and no secret value is written.
func TestExplain(t *testing.T) {
	scheme, err := app.NewScheme()
	if err != nil {
		t.Fatal(err)
	}
	rev, err := policies.Load(t.Context(), "../examples/policies")
	if err != nil {
		t.Fatal(err)
	}
	creds := []string{"../examples/credentials.yaml", "testdata/prod-namespace.yaml", "testdata/missing-key.yaml"}
	run := func(explain bool, workloads ...string) (code int, stdout, stderr string) {
		var out, errOut bytes.Buffer
		e := &eval.Evaluator{Namespace: "default", Scheme: scheme, Out: &out, Err: &errOut, Policy: policies.NewEngine(rev)}
		if explain {
			e.Explain = rev.Explain
		}
		code = e.Run(t.Context(), inputs(t, workloads), inputs(t, creds))
		return code, out.String(), errOut.String()
	}

	code, stdout, stderr := run(true, "../examples/training-job.yaml", "testdata/conflicting-job.yaml", "testdata/wandb-pod.yaml", "../examples/refused-job.yaml")
	if code != eval.ExitRefused {
		t.Errorf("exit %d, want %d:\n%s", code, eval.ExitRefused, stderr)
	}
	for _, want := range []*regexp.Regexp{
		// The user's rule, after the decision it made.
		regexp.MustCompile(`(?m)^refused Job ml-team/train-llm \(policy sha256:[0-9a-f]+\):\n(  \[.*\n)+explain Job ml-team/train-llm: what made each rule fire\n`),
		regexp.MustCompile(`(?m)^  \[prod-read-write-service-account\] wasabi, deny at user/prod_read_write\.rego:15, because:\n` +
			`    user/prod_read_write\.rego:16  input\.namespace\.labels\.env == "prod"\n` +
			`    user/prod_read_write\.rego:17  some cred in input\.credentials\n` +
			`    user/prod_read_write\.rego:18  cred\.access\.level in \{"read-write", "admin"\}\n` +
			`    user/prod_read_write\.rego:19  not lib\.service_account in data\.prod\.readWriteServiceAccounts\n` +
			`    user/prod_read_write\.rego:20  msg := sprintf\( …\n`),
		// A built-in rule, scoped to a credential, that warned.
		regexp.MustCompile(`(?m)^  \[static-credentials\] aws-data, warn at builtin/static_credentials\.rego:\d+, because:\n    builtin/static_credentials\.rego:\d+  not requires_temporary\n`),
		// A refusal of credgate's own, beside a rule's.
		regexp.MustCompile(`(?m)^explain Job ml-team/train-refused: what made each rule fire\n  \[invalid-credential-label\] credgate's own check, not a policy rule\n  \[unknown-credential\] openai, deny at builtin/unknown_credential\.rego:\d+, because:\n`),
		// A body that added several violations.
		regexp.MustCompile(`(?m)^  \[conflicting-env\] wasabi, deny at builtin/conflicting_env\.rego:\d+ \(5 violations\), because:\n`),
	} {
		if !want.MatchString(stderr) {
			t.Errorf("stderr lacks %s:\n%s", want, stderr)
		}
	}
	// A pod the policies admit, refused because the wandb Secret of testdata/missing-key.yaml
	// lacks a key: an offline check, no policy rule.
	if !strings.Contains(stderr, "explain Pod ml-team/train: what made each rule fire\n  [missing-secret-key] credgate's own check, not a policy rule\n") {
		t.Errorf("stderr lacks the pod no policy rule fired on:\n%s", stderr)
	}
	for _, secret := range []string{"placeholder-wandb-api-key", "hf_placeholder", "SENTINEL-wandb-value", "placeholder-secret-access-key", "placeholder-wasabi-secret"} {
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("output contains the secret value %q", secret)
		}
	}

	_, plainOut, plainErr := run(false, "../examples/training-job.yaml", "testdata/conflicting-job.yaml", "testdata/wandb-pod.yaml", "../examples/refused-job.yaml")
	if plainOut != stdout {
		t.Error("Explain changes stdout")
	}
	if strings.Contains(plainErr, "explain ") || !strings.HasPrefix(stderr, plainErr[:strings.Index(plainErr, "\n")+1]) {
		t.Errorf("without Explain, stderr explains, or with it the decisions differ:\n%s", plainErr)
	}
}
