package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/credgate/credgate/api/v1alpha1"
	"github.com/credgate/credgate/policies"
)

func newPolicyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Test, check, list Rego policies, and package one as a CredentialPolicy",
	}
	cmd.AddCommand(newPolicyTestCommand(), newPolicyCheckCommand(), newPolicyListCommand(), newPolicyObjectCommand())
	return cmd
}

func newPolicyTestCommand() *cobra.Command {
	var verbose, coverage bool
	var run string
	cmd := &cobra.Command{
		Use:   "test [DIR...]",
		Short: "Run the built-in and your Rego tests, with coverage",
		Long: `Test runs every test_ rule of the built-in policies and of the *_test.rego files in each
DIR, against the built-in rules, the DIRs' policies and their JSON/YAML data — exactly the
set the webhook evaluates with --policy-dir. Files are named by their path (DIR/file.rego);
a file declaring a package reserved for credgate is refused, with its file and line.

A failing test is shown by its package-qualified name (what --run matches) and its file and
line, then the expression that failed, with the values of its variables, then its trace: the
lines in your files, each run of lines in built-in files folded into a count ("… 37 lines in
built-in files"; -v shows the whole trace). A built-in test failing with your policies (its
fixtures t.denied and t.warned read your deny and warn too) is focused on your files the same
way; one that never reaches them shows every file.

Then "N passed, N failed" and the coverage: the share of the lines of each of your policy
files (tests excluded) that your tests evaluate, and one line for the built-in files, which
their own tests evaluate (the built-in tests evaluate your deny and warn rules too, without
testing them: that is not counted). --coverage lists the lines not evaluated, per file
(file:3-5, 9), yours — or the built-in ones when no DIR is given.

Exit status: 0 all passed, 1 a test failed or --run matched none, 2 the policies do not load
(or --run is not a regular expression).`,
		Example: `  # The built-in rules' own tests
  credgate policy test

  # Your policies and tests, with the built-ins, and the lines your tests miss
  credgate policy test ./my-policies --coverage

  # Only the tests whose name matches (data.<package>.<test>)
  credgate policy test ./my-policies --run 'prod_test\.test_read_write' -v`,
		RunE: func(cmd *cobra.Command, dirs []string) error {
			src, err := policies.LoadDirs(dirs...)
			if err != nil {
				return exitWith(cmd, err)
			}
			rep, err := policies.RunTestsWith(cmd.Context(), src, policies.TestOptions{Run: run})
			if err != nil {
				return exitWith(cmd, err)
			}
			rep.PrintWith(cmd.OutOrStdout(), policies.PrintOptions{Verbose: verbose, Uncovered: coverage})
			if rep.Failed() > 0 || len(rep.Results) == 0 && run != "" {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list every test, and show failing tests' whole traces (built-in files included)")
	cmd.Flags().BoolVar(&coverage, "coverage", false, "list the lines no test evaluated, per policy file")
	cmd.Flags().StringVar(&run, "run", "", "run only the tests whose package-qualified name (data.credgate.prod_test.test_x) matches this regular expression")
	return cmd
}

func newPolicyCheckCommand() *cobra.Command {
	var fix bool
	cmd := &cobra.Command{
		Use:   "check DIR",
		Short: "Check that policies are formatted, compile strictly and read only what the input has",
		Long: `Check reports every Rego file of DIR that opa fmt would change, every file declaring a
package reserved for credgate (anything under credgate but credgate.admission; tests may also
use credgate.<name>_test), and every error of a strict compile (unused variables and imports,
shadowed names) of DIR's files together with the built-in rules — in which every reference to
input is type-checked against the input document's JSON Schema (docs/policy-input.schema.json,
built in): input.credentialz, input.pod.spec.containres or input.request.kind.kinds is an
error, naming what is there instead. A module may also name the schema in a # METADATA
schemas: annotation as schema["credgate-input"]. Every problem is reported at its line in the
file as it is on disk — the line policy test reports too — even in a file opa fmt would
reformat. With --fix it rewrites the unformatted files instead (and reports the other
problems at their lines in the rewritten files).

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
			fmt.Fprintf(cmd.OutOrStdout(), "%s: policies formatted, compiling strictly, reading only what the input has\n", args[0])
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

func newPolicyObjectCommand() *cobra.Command {
	var enforce []string
	var selector string
	cmd := &cobra.Command{
		Use:   "object NAME FILE",
		Short: "Print a CredentialPolicy holding a Rego file, to kubectl apply",
		Long: `Object prints, as YAML, the CredentialPolicy named NAME whose module is the Rego file FILE
(package credgate.admission), with the enforcement of its rules (--enforce) and the namespaces
it applies to (--namespace-selector, a label selector as kubectl takes it). It compiles the
policy with the built-in rules first, as credgate would serve it: a policy that does not
compile is an error, with its line, and nothing is printed.

Exit status: 0 printed, 2 the file does not read or compile, or a flag is wrong.`,
		Example: `  # Deploy a policy tested with credgate policy test
  credgate policy object notebooks-read-only my-policies/notebooks.rego \
    --namespace-selector team-type=research --enforce notebook-read-only=warn | kubectl apply -f -
  kubectl get credentialpolicies`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name, file := args[0], args[1]
			text, err := os.ReadFile(file)
			if err != nil {
				return exitWith(cmd, err)
			}
			enforcement, err := policies.ParseEnforcement("", enforce)
			if err != nil {
				return exitWith(cmd, err)
			}
			obj := policies.Object{Name: name, Rego: string(text), Enforcement: enforcement}
			if selector != "" {
				if obj.NamespaceSelector, err = metav1.ParseToLabelSelector(selector); err != nil {
					return exitWith(cmd, fmt.Errorf("--namespace-selector: %w", err))
				}
			}
			if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
				return exitWith(cmd, fmt.Errorf("name %q: %s", name, strings.Join(errs, "; ")))
			}
			src, err := policies.Merge(policies.Builtin(), policies.ObjectsSource([]policies.Object{obj}))
			if err == nil {
				_, err = policies.Compile(cmd.Context(), src)
			}
			if err != nil {
				// Name the file, not the object's module.
				return exitWith(cmd, errors.New(strings.ReplaceAll(err.Error(), policies.ObjectFile(name)+":", file+":")))
			}
			out, err := policyObjectYAML(obj)
			if err != nil {
				return exitWith(cmd, err)
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	cmd.Flags().StringArrayVar(&enforce, "enforce", nil, "rule=action for a rule of the policy (repeatable), e.g. --enforce my-rule=warn")
	cmd.Flags().StringVar(&selector, "namespace-selector", "", "apply only in the namespaces these labels select, e.g. env=prod,team!=infra")
	return cmd
}

// policyObjectYAML is the CredentialPolicy of o as YAML, its Rego a literal block a reader can
// edit (or, when it cannot be one, a quoted string).
func policyObjectYAML(o policies.Object) ([]byte, error) {
	spec := map[string]any{}
	if len(o.Enforcement) > 0 {
		spec["enforcement"] = o.Enforcement
	}
	if o.NamespaceSelector != nil {
		spec["namespaceSelector"] = o.NamespaceSelector
	}
	doc := map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(), "kind": "CredentialPolicy",
		"metadata": map[string]any{"name": o.Name}, "spec": spec,
	}
	head, err := yaml.Marshal(doc)
	if err != nil {
		return nil, err
	}
	head = bytes.TrimSuffix(bytes.TrimSuffix(head, []byte("spec: {}\n")), []byte("\n"))
	if len(spec) == 0 {
		head = append(head, "\nspec:"...)
	}
	out := slices.Concat(head, []byte("\n  rego: "), []byte(literalBlock(o.Rego, "    ")))
	// The literal block must read back as the very text; if not, a quoted string does.
	var back v1alpha1.CredentialPolicy
	if err := yaml.Unmarshal(out, &back); err != nil || back.Spec.Rego != o.Rego {
		spec["rego"] = o.Rego
		return yaml.Marshal(doc)
	}
	return out, nil
}

// literalBlock writes text as a YAML literal block scalar indented by indent, with the
// chomping indicator that keeps its final newlines as they are.
func literalBlock(text, indent string) string {
	var b strings.Builder
	b.WriteString("|")
	if strings.HasPrefix(text, " ") {
		b.WriteString(strconv.Itoa(len(indent)))
	}
	switch {
	case !strings.HasSuffix(text, "\n"):
		b.WriteString("-")
	case strings.HasSuffix(text, "\n\n"):
		b.WriteString("+")
	}
	b.WriteString("\n")
	for line := range strings.Lines(text) {
		if l := strings.TrimSuffix(line, "\n"); l != "" {
			b.WriteString(indent + l)
		}
		b.WriteString("\n")
	}
	if !strings.HasSuffix(text, "\n") {
		b.WriteString("\n")
	}
	return b.String()
}
