package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/spf13/cobra"

	"github.com/credgate/credgate/eval"
	"github.com/credgate/credgate/internal/app"
	"github.com/credgate/credgate/policies"
)

type evalOptions struct {
	files        []string
	credentials  []string
	namespace    string
	assumeMinted bool
	explain      bool
	policy       policyFlags
}

func newEvalCommand() *cobra.Command {
	o := &evalOptions{}
	cmd := &cobra.Command{
		Use:   "eval -f WORKLOAD.yaml --credentials CREDENTIALS.yaml",
		Short: "Evaluate workloads offline, exactly as the webhook would admit them",
		Long: `Evaluate runs credgate's admission path offline on Pods, Jobs, CronJobs and the pod
templates of apps/v1 workloads. It prints the objects as the API server would store them
(YAML, on stdout) and the decision for each, with any warnings, on stderr.

The credentials file holds Credential objects and, optionally, their Secrets and Namespaces
(whose labels policies read); when a Secret
is given, the keys the injection reads are checked too. Secret values are never printed.
Refusals name their rule id; the built-in policies run with those of --policy-dir, enforced
as --enforce and --enforcement-config say, exactly as in the webhook.

Credentials are taken with the status the file gives them, as the cluster would see them: an
assumeRole or impersonation Credential with none is refused (credential-not-ready), as the
cluster refuses it until credgate refresher mints its credentials; --assume-minted evaluates
as if it had.

--explain adds, after each decision (on stderr), what made each policy rule fire: for every
violation the rule body that produced it — its file and line, whether it added to the deny or
the warn set — and the expressions of that body, each with its file and line, as written in
the policy; a refusal credgate makes itself (invalid-*, limit-exceeded, missing-secret-key) is
named as such. It quotes the policies' source and the rule ids and credential names, never a
value of the workload or of a Credential (nor, so, anything from a Secret).

Exit status: 0 every workload admitted, 1 at least one refused, 2 bad input.`,
		Example: `  # Is a training Job admitted, and what do its pods get? (Evaluate a Pod, or the Job's
  # pods as the Job controller creates them, to see the injection itself.)
  credgate eval -f job.yaml --credentials creds.yaml

  # Read the workload from stdin, write the mutated Job to a file
  kubectl create job train --image=trainer --dry-run=client -o yaml \
    | credgate eval -f - --credentials creds.yaml > job.mutated.yaml

  # With your own policies, and conflicts only audited
  credgate eval -f job.yaml --credentials creds.yaml --policy-dir ./my-policies --enforce conflicting-env=audit

  # Why was it refused? Each rule that fired, and the expressions that made it
  credgate eval -f job.yaml --credentials creds.yaml --policy-dir ./my-policies --explain`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	cmd.Flags().StringArrayVarP(&o.files, "filename", "f", nil, "workload YAML file, or - for stdin (repeatable)")
	cmd.Flags().StringArrayVar(&o.credentials, "credentials", nil, "YAML file of Credentials and optional Secrets (repeatable)")
	cmd.Flags().StringVarP(&o.namespace, "namespace", "n", "default", "namespace of objects that name none")
	cmd.Flags().BoolVar(&o.assumeMinted, "assume-minted", false, "evaluate assumeRole and impersonation Credentials without a Ready condition as if credgate refresher had minted them (the cluster refuses them until it has)")
	cmd.Flags().BoolVar(&o.explain, "explain", false, "after each decision, show what made each policy rule fire: the rule's file and line and its body's expressions (stderr)")
	o.policy.register(cmd, "directory of extra .rego policies and JSON/YAML data")
	_ = cmd.MarkFlagRequired("filename")
	_ = cmd.MarkFlagRequired("credentials")
	return cmd
}

func (o *evalOptions) run(cmd *cobra.Command) error {
	scheme, err := app.NewScheme()
	if err != nil {
		return err
	}
	enforcement, err := o.policy.enforcement()
	if err != nil {
		return exitWith(cmd, err)
	}
	rev, err := policies.Load(cmd.Context(), o.policy.dir)
	if err != nil {
		return exitWith(cmd, err)
	}
	workloads, closeW, err := open(o.files, cmd.InOrStdin())
	if err != nil {
		return exitWith(cmd, err)
	}
	defer closeW()
	creds, closeC, err := open(o.credentials, cmd.InOrStdin())
	if err != nil {
		return exitWith(cmd, err)
	}
	defer closeC()
	e := &eval.Evaluator{Namespace: o.namespace, Scheme: scheme, AssumeMinted: o.assumeMinted, Out: cmd.OutOrStdout(), Err: cmd.ErrOrStderr(),
		Policy: policies.NewEngine(rev), Enforcement: enforcement}
	if o.explain {
		e.Explain = explainer(rev, o.policy.dir)
	}
	if code := e.Run(cmd.Context(), workloads, creds); code != 0 {
		return exitError{code: code}
	}
	return nil
}

// explainer explains rev's evaluations, naming the files of dir as the policy commands do,
// by their path (DIR/file.rego; the revision names them user/file.rego).
func explainer(rev *policies.Revision, dir string) func(context.Context, ast.Value) ([]policies.Firing, error) {
	rename := func(file string) string {
		if rest, ok := strings.CutPrefix(file, "user/"); ok && dir != "" {
			return filepath.ToSlash(filepath.Join(dir, rest))
		}
		return file
	}
	return func(ctx context.Context, input ast.Value) ([]policies.Firing, error) {
		firings, err := rev.Explain(ctx, input)
		for i := range firings {
			f := &firings[i]
			f.File = rename(f.File)
			for j := range f.Exprs {
				f.Exprs[j].File = rename(f.Exprs[j].File)
			}
		}
		return firings, err
	}
}

func exitWith(cmd *cobra.Command, err error) error {
	fmt.Fprintf(cmd.ErrOrStderr(), "error: %v\n", err)
	return exitError{code: eval.ExitBadInput}
}

// open opens every named file ("-" is stdin) and returns a function closing them.
func open(names []string, stdin io.Reader) ([]eval.Input, func(), error) {
	var inputs []eval.Input
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			_ = f.Close()
		}
	}
	for _, n := range names {
		if n == "-" {
			inputs = append(inputs, eval.Input{Name: "stdin", Reader: stdin})
			continue
		}
		f, err := os.Open(n)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("open %s: %w", n, err)
		}
		files = append(files, f)
		inputs = append(inputs, eval.Input{Name: n, Reader: f})
	}
	return inputs, closeAll, nil
}
