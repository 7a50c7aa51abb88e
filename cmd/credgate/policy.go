package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/credgate/credgate/policies"
)

func newPolicyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Test, check and list Rego policies",
	}
	cmd.AddCommand(newPolicyTestCommand(), newPolicyCheckCommand(), newPolicyListCommand())
	return cmd
}

func newPolicyTestCommand() *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "test [DIR...]",
		Short: "Run the built-in and your Rego tests, with coverage",
		Long: `Test runs every test_ rule of the built-in policies and of the *_test.rego files in each
DIR, against the built-in rules, the DIRs' policies and their JSON/YAML data — exactly the
set the webhook evaluates with --policy-dir. A failing test is shown with its evaluation
trace. It prints "N passed, N failed" and the share of policy lines the tests evaluated.
Files are named by their path (DIR/file.rego); a file declaring a package reserved for
credgate is refused, with its file and line.

Exit status: 0 all passed, 1 a test failed, 2 the policies do not load.`,
		Example: `  # The built-in rules' own tests
  credgate policy test

  # Your policies and tests, with the built-ins
  credgate policy test ./my-policies -v`,
		RunE: func(cmd *cobra.Command, dirs []string) error {
			src, err := policies.LoadDirs(dirs...)
			if err != nil {
				return exitWith(cmd, err)
			}
			rep, err := policies.RunTests(cmd.Context(), src)
			if err != nil {
				return exitWith(cmd, err)
			}
			rep.Print(cmd.OutOrStdout(), verbose)
			if rep.Failed() > 0 {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list every test, not only the failures")
	return cmd
}

func newPolicyCheckCommand() *cobra.Command {
	var fix bool
	cmd := &cobra.Command{
		Use:   "check DIR",
		Short: "Check that policies are formatted and compile strictly",
		Long: `Check reports every Rego file of DIR that opa fmt would change, every file declaring a
package reserved for credgate (anything under credgate but credgate.admission; tests may also
use credgate.<name>_test), and every error of a strict compile (unused variables and imports,
shadowed names) of DIR's files together with the built-in rules. With --fix it rewrites the
unformatted files instead.

Exit status: 0 clean, 1 problems found.`,
		Example: `  credgate policy check ./my-policies
  credgate policy check --fix ./my-policies`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			problems, err := policies.CheckDir(args[0], fix)
			if err != nil {
				return exitWith(cmd, err)
			}
			for _, p := range problems {
				fmt.Fprintln(cmd.ErrOrStderr(), p)
			}
			if len(problems) > 0 {
				return exitError{code: 1}
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: policies formatted and compiling strictly\n", args[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&fix, "fix", false, "rewrite unformatted files")
	return cmd
}

func newPolicyListCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "list [DIR...]",
		Short: "List the rules a policy revision serves",
		Long: `List compiles the built-in rules with the policies of each DIR — the revision the webhook
would serve with --policy-dir — and lists its rules: built-in ones (a package under
credgate.builtin each) and yours (the deny and warn rules of credgate.admission), with their
rule id, the sets they add to, their default enforcement (what --enforce can override), the
file and line they come from, and their description.

Ids and descriptions come from the rules' # METADATA annotations (title, description,
custom.id, custom.enforcement). A rule of yours without one is listed by the id its head
states literally (lib.violation("id", ...)), else by its file, line and Rego rule name.

Exit status: 0 listed, 2 the policies do not load or compile.`,
		Example: `  # The built-in rules
  credgate policy list

  # What the webhook serves with --policy-dir ./my-policies, as JSON
  credgate policy list ./my-policies -o json`,
		RunE: func(cmd *cobra.Command, dirs []string) error {
			if output != "table" && output != "json" {
				return exitWith(cmd, fmt.Errorf("--output %q: want table or json", output))
			}
			src, err := policies.LoadDirs(dirs...)
			if err != nil {
				return exitWith(cmd, err)
			}
			rev, err := policies.Compile(cmd.Context(), src)
			if err != nil {
				return exitWith(cmd, err)
			}
			rules := rev.Rules()
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(rules)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "RULE\tSETS\tENFORCEMENT\tSOURCE\tDESCRIPTION")
			for _, r := range rules {
				desc := r.Description
				if desc == "" {
					desc = r.Title
				}
				if desc == "" {
					desc = "(no # METADATA)"
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s:%d\t%s\n", r.Name(), strings.Join(r.Sets, ","), r.Enforcement, r.File, r.Line, desc)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

// policyFlags are the flags serve and eval share to choose and enforce policies.
type policyFlags struct {
	dir               string
	enforcementConfig string
	enforce           []string
}

func (p *policyFlags) register(cmd *cobra.Command, dirHelp string) {
	f := cmd.Flags()
	f.StringVar(&p.dir, "policy-dir", "", dirHelp)
	f.StringVar(&p.enforcementConfig, "enforcement-config", "", "YAML file mapping rule ids to deny, warn or audit (rules: {static-credentials: deny})")
	f.StringArrayVar(&p.enforce, "enforce", nil, "rule=action, overriding the config file (repeatable), e.g. --enforce conflicting-env=audit")
}

func (p *policyFlags) enforcement() (policies.Enforcement, error) {
	return policies.ParseEnforcement(p.enforcementConfig, p.enforce)
}
