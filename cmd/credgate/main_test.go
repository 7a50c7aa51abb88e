package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "version", args: []string{"version"}, wantStdout: "credgate dev (commit "},
		{name: "--version", args: []string{"--version"}, wantStdout: "credgate dev (commit "},
		{name: "help lists commands", args: []string{"--help"}, wantStdout: "eval"},
		{name: "eval help has examples", args: []string{"eval", "--help"}, wantStdout: "Exit status: 0"},
		{name: "eval admitted", args: []string{"eval", "-f", "../../examples/training-job.yaml",
			"--credentials", "../../examples/credentials.yaml"}, wantStdout: "kind: Job", wantStderr: "admitted Job ml-team/train-llm: its pods get aws-data, hf, wandb"},
		{name: "eval refused", args: []string{"eval", "-f", "../../examples/refused-job.yaml",
			"--credentials", "../../examples/credentials.yaml"}, wantCode: 1, wantStderr: "[unknown-credential]"},
		{name: "eval from stdin", args: []string{"eval", "-f", "-", "--credentials", "../../examples/credentials.yaml"},
			stdin:      "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: ml-team, labels: {credentials.credgate.dev/hf: \"true\"}}\nspec: {containers: [{name: c, image: i}]}\n",
			wantStdout: "HF_TOKEN", wantStderr: "admitted Pod ml-team/p"},
		{name: "eval missing file", args: []string{"eval", "-f", "nope.yaml", "--credentials", "../../examples/credentials.yaml"},
			wantCode: 2, wantStderr: "open nope.yaml"},
		{name: "eval missing flags", args: []string{"eval"}, wantCode: 2, wantStderr: `required flag(s) "credentials", "filename" not set`},
		{name: "unknown command", args: []string{"frobnicate"}, wantCode: 2, wantStderr: "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(t.Context(), tt.args, strings.NewReader(tt.stdin), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d\nstderr: %s", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantStdout, stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantStderr, stderr.String())
			}
		})
	}
}
