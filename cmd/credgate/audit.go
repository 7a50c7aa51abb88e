package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/credgate/credgate/audit"
)

// auditFlags are the filters shared by credgate audit and credgate audit summary.
type auditFlags struct {
	since, until string
	events       []string
	filter       audit.Filter
	output       string
}

func (f *auditFlags) register(cmd *cobra.Command, outputs string) {
	fl := cmd.Flags()
	fl.StringVar(&f.since, "since", "", "only records at or after this time: a duration before now (24h) or RFC 3339")
	fl.StringVar(&f.until, "until", "", "only records before this time: a duration before now or RFC 3339")
	fl.StringVarP(&f.filter.Namespace, "namespace", "n", "", "only records of this namespace")
	fl.StringVar(&f.filter.User, "user", "", "only records of requests by this user")
	fl.StringVar(&f.filter.Rule, "rule", "", "only records with a violation of this rule id")
	fl.StringVar(&f.filter.Credential, "credential", "", "only records requesting this credential")
	fl.StringVar(&f.filter.Kind, "kind", "", "only records of this kind (Pod, Job, CronJob), or owned by one")
	fl.StringSliceVar(&f.events, "event", nil, "only these events: denied, warned, audited, allowed (repeatable)")
	fl.StringVarP(&f.output, "output", "o", "table", "output format: "+outputs)
}

// complete parses the time and event flags into the filter.
func (f *auditFlags) complete(now time.Time) error {
	var err error
	if f.filter.Since, err = parseTime(f.since, now); err != nil {
		return fmt.Errorf("--since: %w", err)
	}
	if f.filter.Until, err = parseTime(f.until, now); err != nil {
		return fmt.Errorf("--until: %w", err)
	}
	for _, e := range f.events {
		ev := audit.Event("admission_" + strings.TrimPrefix(e, "admission_"))
		if !slices.Contains(audit.Events, ev) {
			return fmt.Errorf("--event %q: use denied, warned, audited or allowed", e)
		}
		f.filter.Events = append(f.filter.Events, ev)
	}
	return nil
}

func parseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration (24h) nor an RFC 3339 time (2026-11-22T10:00:00Z)", s)
	}
	return t, nil
}

func newAuditCommand() *cobra.Command {
	f := &auditFlags{}
	cmd := &cobra.Command{
		Use:   "audit [file|-]...",
		Short: "List and summarise the audit records of refused, warned and audited admissions",
		Long: `Audit reads the records credgate serve writes (--audit-file, --audit-stdout) and lists those
that pass the filters. A file is read with its rotated files (file.N … file.1, oldest first);
"-" or no argument reads standard input, so the stdout sink reads back with kubectl logs.
JSON lines that are not records (credgate's own log lines) are skipped and counted on stderr;
broken lines (not JSON, a malformed record, a record of a newer schema, a line longer than
4 MiB) are reported on stderr with their file and line number and skipped, and reading goes on.

Exit status: 0 when every source was read, even with lines skipped; 2 on an error (a file that
cannot be read, a bad flag).`,
		Example: `  # Refusals of the last day in namespace ml-team
  credgate audit /var/log/credgate/audit.log --since 24h -n ml-team --event denied

  # From the stdout sink, as JSON lines
  kubectl logs -n credgate-system deploy/credgate | credgate audit -o json --rule admin-scoped-credential

  # Counts by rule, namespace, user and credential, by hour
  credgate audit summary /var/log/credgate/audit.log`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.complete(time.Now()); err != nil {
				return err
			}
			var recs []*audit.Record
			err := readRecords(cmd, args, &f.filter, func(r *audit.Record) { recs = append(recs, r) })
			if err != nil {
				return err
			}
			return printRecords(cmd.OutOrStdout(), f.output, recs)
		},
	}
	f.register(cmd, "table, json (one record a line) or yaml")
	cmd.AddCommand(newAuditSummaryCommand())
	return cmd
}

func newAuditSummaryCommand() *cobra.Command {
	f := &auditFlags{}
	var bucket time.Duration
	cmd := &cobra.Command{
		Use:   "summary [file|-]...",
		Short: "Count audit records by event, rule, namespace, user and credential, and over time",
		Example: `  credgate audit summary /var/log/credgate/audit.log --since 168h --bucket 24h
  kubectl logs -n credgate-system deploy/credgate | credgate audit summary -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.complete(time.Now()); err != nil {
				return err
			}
			s := audit.NewSummary(bucket)
			if err := readRecords(cmd, args, &f.filter, s.Add); err != nil {
				return err
			}
			s.Finish()
			return printSummary(cmd.OutOrStdout(), f.output, s)
		},
	}
	f.register(cmd, "table or json")
	cmd.Flags().DurationVar(&bucket, "bucket", time.Hour, "width of the histogram's time buckets")
	return cmd
}

// readRecords reads every source named (standard input for none or "-"), passing the records
// that match filter to fn. It reports broken lines on stderr, and counts the JSON lines that
// are no records (log lines).
func readRecords(cmd *cobra.Command, args []string, filter *audit.Filter, fn func(*audit.Record)) error {
	if len(args) == 0 {
		args = []string{"-"}
	}
	problems, notRecords := 0, 0
	h := audit.Handlers{
		Record: func(r *audit.Record) error {
			if filter.Match(r) {
				fn(r)
			}
			return nil
		},
		Problem: func(p audit.Problem) {
			problems++
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v, skipped\n", p)
		},
		NotRecord: func(int) { notRecords++ },
	}
	for _, arg := range args {
		if arg == "-" {
			if err := audit.Scan(cmd.InOrStdin(), "stdin", h); err != nil {
				return err
			}
			continue
		}
		if _, err := os.Stat(arg); err != nil {
			return fmt.Errorf("read audit file: %w", err)
		}
		for _, path := range audit.Files(arg) {
			if err := readFile(path, h); err != nil {
				return err
			}
		}
	}
	if problems > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %d broken line(s) skipped\n", problems)
	}
	if notRecords > 0 {
		fmt.Fprintf(cmd.ErrOrStderr(), "%d JSON line(s) skipped as not audit records (log lines)\n", notRecords)
	}
	return nil
}

func readFile(path string, h audit.Handlers) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read audit file: %w", err)
	}
	defer f.Close()
	return audit.Scan(f, path, h)
}

func printRecords(w io.Writer, format string, recs []*audit.Record) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		for _, r := range recs {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	case "yaml":
		if recs == nil {
			recs = []*audit.Record{}
		}
		b, err := yaml.Marshal(recs)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	case "table":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tEVENT\tNAMESPACE\tOBJECT\tOWNER\tUSER\tRULES\tCREDENTIALS")
		for _, r := range recs {
			event := strings.TrimPrefix(string(r.Event), "admission_")
			if r.DryRun {
				event += " (dry run)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s/%s\t%s\t%s\t%s\t%s\n", r.Time.UTC().Format(time.RFC3339), event, r.Namespace,
				r.Kind, r.Name, dash(r.Owner.String()), r.User, dash(strings.Join(rules(r), ",")), dash(strings.Join(r.Credentials, ",")))
		}
		return tw.Flush()
	}
	return fmt.Errorf("--output %q: use table, json or yaml", format)
}

func rules(r *audit.Record) []string {
	var out []string
	for _, v := range r.Violations {
		if !slices.Contains(out, v.Rule) {
			out = append(out, v.Rule)
		}
	}
	return out
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func printSummary(w io.Writer, format string, s *audit.Summary) error {
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(s)
	case "table":
		fmt.Fprintf(w, "%d records\n", s.Records)
		for _, c := range []struct {
			title  string
			counts map[string]int
		}{{"EVENT", s.Events}, {"RULE", s.Rules}, {"NAMESPACE", s.Namespaces}, {"USER", s.Users}, {"CREDENTIAL", s.Credentials}} {
			fmt.Fprintln(w)
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "%s\tRECORDS\n", c.title)
			for _, k := range byCount(c.counts) {
				fmt.Fprintf(tw, "%s\t%d\n", k, c.counts[k])
			}
			if err := tw.Flush(); err != nil {
				return err
			}
		}
		fmt.Fprintf(w, "\nPER %s\n", s.BucketWidth)
		peak := 0
		for _, b := range s.Buckets {
			peak = max(peak, b.Count)
		}
		for _, b := range s.Buckets {
			bar := 0
			if peak > 0 {
				bar = (b.Count*40 + peak - 1) / peak
			}
			fmt.Fprintf(w, "%s %6d %s\n", b.Start.Format(time.RFC3339), b.Count, strings.Repeat("#", bar))
		}
		return nil
	}
	return fmt.Errorf("--output %q: use table or json", format)
}

// byCount orders keys by count, then name.
func byCount(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	return keys
}
