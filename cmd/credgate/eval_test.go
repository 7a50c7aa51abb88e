package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestEvalExplain: credgate eval --explain follows each decision, on stderr, with the rules
// that fired and the expressions that made them, naming the files of --policy-dir by their
// path; stdout carries the YAML alone, and no secret value is printed.
func TestEvalExplain(t *testing.T) {
	args := []string{"eval", "-f", "../../examples/training-job.yaml", "-f", "../../eval/testdata/conflicting-job.yaml",
		"--credentials", "../../examples/credentials.yaml", "--credentials", "../../eval/testdata/prod-namespace.yaml",
		"--policy-dir", "../../examples/policies"}
	code, stdout, stderr := runCommand(t, append(args, "--explain")...)
	if code != 1 {
		t.Errorf("exit %d, want 1 (refused): %s", code, stderr)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^explain Job ml-team/train-llm: what made each rule fire$`),
		regexp.MustCompile(`(?m)^  \[temporary-credentials-required\] aws-data, deny at \.\./\.\./examples/policies/require_temporary_in_prod\.rego:13, because:\n` +
			`    \.\./\.\./examples/policies/require_temporary_in_prod\.rego:14  input\.namespace\.labels\.env == "prod"\n`),
		regexp.MustCompile(`(?m)^    builtin/conflicting_env\.rego:\d+ +not lib\.same_env\(have, cred, e\)$`),
	} {
		if !want.MatchString(stderr) {
			t.Errorf("stderr lacks %s:\n%s", want, stderr)
		}
	}
	if strings.Contains(stdout, "explain") || strings.Contains(stdout, ".rego") {
		t.Errorf("the explanation reached stdout:\n%s", stdout)
	}
	for _, secret := range []string{"placeholder-wandb-api-key", "hf_placeholder", "placeholder-secret-access-key", "placeholder-wasabi-secret"} {
		if strings.Contains(stdout+stderr, secret) {
			t.Errorf("output contains the secret value %q", secret)
		}
	}
	if _, _, plain := runCommand(t, args...); strings.Contains(plain, "explain ") {
		t.Errorf("without --explain, stderr explains:\n%s", plain)
	}
}
