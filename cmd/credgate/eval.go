package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/credgate/credgate/eval"
	"github.com/credgate/credgate/policies"
	"github.com/credgate/credgate/webhook"
)

type evalOptions struct {
	files        []string
	credentials  []string
	namespace    string
	assumeMinted bool
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
assumeRole Credential with none is refused (credential-not-ready), as the cluster refuses it
until credgate refresher mints its credentials; --assume-minted evaluates as if it had.

Exit status: 0 every workload admitted, 1 at least one refused, 2 bad input.`,
		Example: `  # Is a training Job admitted, and what do its pods get? (Evaluate a Pod, or the Job's
  # pods as the Job controller creates them, to see the injection itself.)
  credgate eval -f job.yaml --credentials creds.yaml

  # Read the workload from stdin, write the mutated Job to a file
  kubectl create job train --image=trainer --dry-run=client -o yaml \
    | credgate eval -f - --credentials creds.yaml > job.mutated.yaml

  # With your own policies, and conflicts only audited
  credgate eval -f job.yaml --credentials creds.yaml --policy-dir ./my-policies --enforce conflicting-env=audit`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	cmd.Flags().StringArrayVarP(&o.files, "filename", "f", nil, "workload YAML file, or - for stdin (repeatable)")
	cmd.Flags().StringArrayVar(&o.credentials, "credentials", nil, "YAML file of Credentials and optional Secrets (repeatable)")
	cmd.Flags().StringVarP(&o.namespace, "namespace", "n", "default", "namespace of objects that name none")
	cmd.Flags().BoolVar(&o.assumeMinted, "assume-minted", false, "evaluate assumeRole Credentials without a Ready condition as if credgate refresher had minted them (the cluster refuses them until it has)")
	o.policy.register(cmd, "directory of extra .rego policies and JSON/YAML data")
	_ = cmd.MarkFlagRequired("filename")
	_ = cmd.MarkFlagRequired("credentials")
	return cmd
}

func (o *evalOptions) run(cmd *cobra.Command) error {
	scheme, err := webhook.NewScheme()
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
	if code := e.Run(cmd.Context(), workloads, creds); code != 0 {
		return exitError{code: code}
	}
	return nil
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
