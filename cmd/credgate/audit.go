package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

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
A line is a record when its "event" starts with "admission_"; one without "v" is read as
version 1. JSON lines that are not records (credgate's own log lines) are skipped and counted
on stderr; broken lines (not JSON, a malformed record, a record of a newer schema, a line
longer than 4 MiB) are reported on stderr with their file and line number and skipped, and
reading goes on.

The table's RULES are the rules that refused the object (action deny); WARNINGS, those that
only warned about or flagged it (warn, audit). -o wide adds each record's messages beneath it,
one line each: action, rule, the credentials and CredentialPolicy it names, and the message. A
message two credentials tripped alike shows once, naming both. -o json and yaml print the
records as they are.

Exit status: 0 when every source was read, even with lines skipped; 2 on an error (a file that
cannot be read, a bad flag).`,
		Example: `  # Refusals of the last day in namespace ml-team
  credgate audit /var/log/credgate/audit.log --since 24h -n ml-team --event denied

  # The same with why: every message of each record
  credgate audit /var/log/credgate/audit.log --since 24h -n ml-team --event denied -o wide

  # From the stdout sink, as JSON lines
  kubectl logs -n credgate-system deploy/credgate | credgate audit -o json --rule admin-scoped-credential

  # Counts by event, refusing rule, warning, namespace, user and credential, by hour
  credgate audit summary /var/log/credgate/audit.log

  # Refusals counted by the workload that owns them (a CronJob with its Jobs and their pods)
  credgate audit summary /var/log/credgate/audit.log --event denied --by owner`,
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
	f.register(cmd, "table, wide (the table with every message), json (one record a line) or yaml")
	cmd.AddCommand(newAuditSummaryCommand())
	return cmd
}

func newAuditSummaryCommand() *cobra.Command {
	f := &auditFlags{}
	var bucket time.Duration
	var by []string
	cmd := &cobra.Command{
		Use:   "summary [file|-]...",
		Short: "Count audit records by event, rule, namespace, user, credential or owner, and over time",
		Long: `Summary counts the records that pass the filters, each breakdown --by asks for in a table of
its own, most records first, and then per time bucket. A rule or credential counts once per
record, however many violations name it.

  event       admission_denied, admission_warned, …
  rule        the rules that refused (action deny; for a record written before violations
              carried their action, the record's enforcement)
  warning     the rules that only warned or flagged (warn, audit), a refused record's included
  namespace, user, credential
  owner       the workload at the top of the owner chain: a Job with its pods, a CronJob
              with its Jobs and their pods (the record's owner, and the owners other records
              name for it); an object without owner is its own

By default every breakdown but owner; -o json holds the breakdowns asked for.`,
		Example: `  credgate audit summary /var/log/credgate/audit.log --since 168h --bucket 24h
  credgate audit summary /var/log/credgate/audit.log --event denied --by rule,warning
  credgate audit summary /var/log/credgate/audit.log --by owner
  kubectl logs -n credgate-system deploy/credgate | credgate audit summary -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.complete(time.Now()); err != nil {
				return err
			}
			s, err := audit.NewSummary(bucket, by...)
			if err != nil {
				return fmt.Errorf("--by: %w", err)
			}
			if err := readRecords(cmd, args, &f.filter, s.Add); err != nil {
				return err
			}
			s.Finish()
			return printSummary(cmd.OutOrStdout(), f.output, s)
		},
	}
	f.register(cmd, "table or json")
	cmd.Flags().DurationVar(&bucket, "bucket", time.Hour, "width of the histogram's time buckets")
	cmd.Flags().StringSliceVar(&by, "by", nil, "breakdowns to count records by: "+strings.Join(audit.Breakdowns, ", ")+
		" (repeatable; default all but owner)")
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
	case "table", "wide":
		return printTable(w, recs, format == "wide")
	}
	return fmt.Errorf("--output %q: use table, wide, json or yaml", format)
}

// printTable prints one row a record; wide, each record's findings beneath its row, one line
// each.
func printTable(w io.Writer, recs []*audit.Record, wide bool) error {
	var rows bytes.Buffer
	tw := tabwriter.NewWriter(&rows, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tEVENT\tNAMESPACE\tOBJECT\tOWNER\tUSER\tRULES\tWARNINGS\tCREDENTIALS")
	var findings [][]audit.Finding
	for _, r := range recs {
		fs := r.Findings()
		if wide {
			findings = append(findings, fs)
		}
		var refused, warned []string
		type key struct {
			refused bool
			rule    string
		}
		seen := map[key]bool{} // a set, not a scan of the lists: a record may hold many rules
		for _, f := range fs {
			if k := (key{f.Refused(), f.Rule}); !seen[k] {
				seen[k] = true
				if k.refused {
					refused = append(refused, f.Rule)
				} else {
					warned = append(warned, f.Rule)
				}
			}
		}
		event := strings.TrimPrefix(string(r.Event), "admission_")
		if r.DryRun {
			event += " (dry run)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s/%s\t%s\t%s\t%s\t%s\t%s\n", r.Time.UTC().Format(time.RFC3339), cell(event), cell(r.Namespace),
			cell(r.Kind), cell(r.Name), dash(cell(r.Owner.String())), cell(r.User), dash(cell(strings.Join(refused, ","))),
			dash(cell(strings.Join(warned, ","))), dash(cell(strings.Join(r.Credentials, ","))))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if !wide {
		_, err := w.Write(rows.Bytes())
		return err
	}
	// Every cell is one line (cell), so the tabwriter's lines are the header and one a record.
	lines := bytes.SplitAfter(rows.Bytes(), []byte("\n"))
	if len(lines) < len(findings)+1 {
		return fmt.Errorf("internal error: %d table lines for %d records", len(lines), len(findings))
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%s", lines[0])
	for i, fs := range findings {
		fmt.Fprintf(bw, "%s", lines[i+1])
		for _, f := range fs {
			fmt.Fprintf(bw, "    %-5s  %s\n", cell(f.Action), findingText(f))
		}
	}
	return bw.Flush()
}

// findingText is a finding's line of -o wide: "rule (credentials a, b; policy p): message".
func findingText(f audit.Finding) string {
	var about []string
	switch len(f.Credentials) {
	case 0:
	case 1:
		about = append(about, "credential "+f.Credentials[0])
	default:
		about = append(about, "credentials "+strings.Join(f.Credentials, ", "))
	}
	switch len(f.Policies) {
	case 0:
	case 1:
		about = append(about, "policy "+f.Policies[0])
	default:
		about = append(about, "policies "+strings.Join(f.Policies, ", "))
	}
	s := f.Rule
	if len(about) > 0 {
		s += " (" + strings.Join(about, "; ") + ")"
	}
	return cell(s + ": " + f.Message)
}

// cell returns s fit for one cell of a terminal table: a string with a character that is not
// printable (a newline, a tab, a terminal escape, a bidi override) is printed quoted, Go-style,
// without the outer quotes, so that no record can break the table or drive the terminal.
func cell(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return s
	}
	q := strconv.Quote(s)
	return q[1 : len(q)-1]
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
		for _, by := range s.By {
			fmt.Fprintln(w)
			tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
			if by == audit.ByOwner {
				printOwners(tw, s.Owners)
			} else {
				title, counts := summaryTable(s, by)
				fmt.Fprintf(tw, "%s\tRECORDS\n", title)
				for _, k := range byCount(counts) {
					fmt.Fprintf(tw, "%s\t%d\n", dash(cell(k)), counts[k])
				}
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

// summaryTable returns the title and counts of a breakdown other than owner.
func summaryTable(s *audit.Summary, by string) (string, map[string]int) {
	switch by {
	case audit.ByEvent:
		return "EVENT", s.Events
	case audit.ByRule:
		return "RULE (DENY)", s.Rules
	case audit.ByWarning:
		return "WARNING (WARN, AUDIT)", s.Warnings
	case audit.ByNamespace:
		return "NAMESPACE", s.Namespaces
	case audit.ByUser:
		return "USER", s.Users
	case audit.ByCredential:
		return "CREDENTIAL", s.Credentials
	}
	return strings.ToUpper(by), nil
}

// printOwners prints the owner breakdown: one row an owner workload, with its records by
// event and by rule.
func printOwners(w io.Writer, owners []*audit.OwnerCount) {
	fmt.Fprintln(w, "NAMESPACE\tOWNER\tRECORDS\tEVENTS\tRULES\tWARNINGS")
	for _, o := range owners {
		var events []string
		for _, e := range byCount(o.Events) {
			events = append(events, fmt.Sprintf("%d %s", o.Events[e], strings.TrimPrefix(e, "admission_")))
		}
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\t%s\n", dash(cell(o.Namespace)), cell(o.String()), o.Records,
			cell(strings.Join(events, ", ")), dash(cell(counted(o.Rules))), dash(cell(counted(o.Warnings))))
	}
}

// counted returns "a 3, b 1": the keys of m by count, each with its count.
func counted(m map[string]int) string {
	var out []string
	for _, k := range byCount(m) {
		out = append(out, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(out, ", ")
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
