package policies

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/cover"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/tester"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// TestOptions select the tests RunTestsWith runs.
type TestOptions struct {
	// Run is a regular expression (Go syntax) selecting the tests whose package-qualified name
	// matches it (data.credgate.prod_test.test_read_write_refused), as opa test --run does;
	// every test when empty.
	Run string
}

// TestReport is the outcome of running a Source's Rego tests.
type TestReport struct {
	Results []*tester.Result
	// Files is the coverage of each policy file (tests excluded), the user's files first, by
	// name, then the built-in ones. A user file's coverage is what the user's tests evaluate
	// of it, a built-in file's what the built-in tests do: the built-in tests also evaluate
	// the user's deny and warn rules (they read every set), which tests nothing of them.
	Files []FileCoverage
	// Run is the TestOptions.Run the tests were selected with.
	Run string
}

// FileCoverage is the coverage of one policy file: the lines holding a rule head or an
// expression, and which of them no test evaluated.
type FileCoverage struct {
	File    string
	Builtin bool
	// Lines counts the lines holding a rule head or an expression; Covered those whose every
	// rule head and expression was evaluated.
	Lines, Covered int
	// Uncovered are the other lines, ascending.
	Uncovered []int
	// Measured says whether a test of the file's side (the user's tests for a user file, the
	// built-in tests for a built-in file) ran at all.
	Measured bool
}

// Percent is the share of the file's lines the tests evaluated (100 for a file with none).
func (f FileCoverage) Percent() float64 {
	if f.Lines == 0 {
		return 100
	}
	return 100 * float64(f.Covered) / float64(f.Lines)
}

// Failed counts the tests that failed or errored.
func (r TestReport) Failed() int {
	n := 0
	for _, res := range r.Results {
		if !res.Pass() {
			n++
		}
	}
	return n
}

// RunTests runs every test of src, as RunTestsWith with no options.
func RunTests(ctx context.Context, src Source) (TestReport, error) {
	return RunTestsWith(ctx, src, TestOptions{})
}

// RunTestsWith runs the test_ rules of src's tests selected by opts against its modules and
// data, with coverage. A user file (not one of the built-in files) declaring a reserved
// package is refused, as Compile refuses it.
//
// The built-in tests and the user's run apart, each measuring the coverage of its own files.
// When a test fails, the failing tests run again with tracing (OPA cannot trace and measure
// coverage in one run), so Print can show how they evaluated.
func RunTestsWith(ctx context.Context, src Source, opts TestOptions) (TestReport, error) {
	if _, err := regexp.Compile(opts.Run); err != nil {
		return TestReport{}, fmt.Errorf("test name pattern %q: %w", opts.Run, err)
	}
	modules := make(map[string]*ast.Module, len(src.Modules)+len(src.Tests))
	builtin := map[string]bool{}
	var errs []error
	for i, files := range []map[string]string{src.Modules, src.Tests} {
		for name, text := range files {
			m, err := ast.ParseModuleWithOpts(name, text, parserOptions)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			builtin[name] = isBuiltin(name, text)
			if !builtin[name] {
				if err := checkUserModule(name, m, i == 1); err != nil {
					errs = append(errs, err)
					continue
				}
			}
			modules[name] = m
		}
	}
	if len(errs) > 0 {
		slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
		return TestReport{}, fmt.Errorf("parse policies: %w", errors.Join(errs...))
	}

	// The packages of each side's files: user packages never share a package with the
	// built-in ones (reserved.go), so a package says whose a test is.
	var builtinPkgs, userPkgs []ast.Ref
	for name, m := range modules {
		pkgs := &userPkgs
		if builtin[name] {
			pkgs = &builtinPkgs
		}
		if !slices.ContainsFunc(*pkgs, func(p ast.Ref) bool { return p.Equal(m.Package.Path) }) {
			*pkgs = append(*pkgs, m.Package.Path)
		}
	}

	rep := TestReport{Run: opts.Run}
	var failed []string
	covers := map[bool]*cover.Cover{}
	ran := map[bool]bool{} // some test of the side ran
	for _, side := range []struct {
		builtin bool
		pkgs    []ast.Ref
	}{{true, builtinPkgs}, {false, userPkgs}} {
		if len(side.pkgs) == 0 {
			continue // no prefix would select every test
		}
		cov := cover.New()
		covers[side.builtin] = cov
		results, err := runTests(ctx, src, modules, runSelection{cov: cov, run: opts.Run, packages: side.pkgs})
		if err != nil {
			return TestReport{}, err
		}
		ran[side.builtin] = len(results) > 0
		for _, res := range results {
			if res.Pass() {
				rep.Results = append(rep.Results, res)
			} else {
				failed = append(failed, "^"+regexp.QuoteMeta(res.Package+"."+res.Name)+"$")
			}
		}
	}
	if len(failed) > 0 {
		traced, err := runTests(ctx, src, modules, runSelection{run: strings.Join(failed, "|")})
		if err != nil {
			return TestReport{}, err
		}
		rep.Results = append(rep.Results, traced...)
	}
	slices.SortFunc(rep.Results, func(a, b *tester.Result) int {
		return strings.Compare(a.Location.File+"\x00"+a.Name, b.Location.File+"\x00"+b.Name)
	})

	for name := range src.Modules {
		one := map[string]*ast.Module{name: modules[name]}
		fc := FileCoverage{File: name, Builtin: builtin[name], Measured: covers[builtin[name]] != nil && ran[builtin[name]]}
		// Every line holding a rule head or an expression: what no test evaluated.
		all := rows(cover.New().Report(one).Files[name].NotCovered)
		fc.Lines = len(all)
		if fc.Measured {
			fc.Uncovered = rows(covers[fc.Builtin].Report(one).Files[name].NotCovered)
		} else {
			fc.Uncovered = all
		}
		fc.Covered = fc.Lines - len(fc.Uncovered)
		rep.Files = append(rep.Files, fc)
	}
	slices.SortFunc(rep.Files, func(a, b FileCoverage) int {
		if a.Builtin != b.Builtin {
			if a.Builtin {
				return 1
			}
			return -1
		}
		return strings.Compare(a.File, b.File)
	})
	return rep, nil
}

// rows lists the lines of ranges, ascending, each once.
func rows(ranges []cover.Range) []int {
	var out []int
	for _, r := range ranges {
		for l := r.Start.Row; l <= r.End.Row; l++ {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// runSelection says which tests runTests runs, and how.
type runSelection struct {
	// cov measures coverage; without it the tests run traced.
	cov *cover.Cover
	// run selects tests by name (all when empty); packages by package (all when empty).
	run      string
	packages []ast.Ref
}

// runTests runs the tests sel selects: with coverage when sel.cov is set, with tracing when
// it is not.
func runTests(ctx context.Context, src Source, modules map[string]*ast.Module, sel runSelection) ([]*tester.Result, error) {
	store := inmem.NewFromObject(src.data())
	// The serving capabilities: a test of a policy that calls a forbidden built-in fails to
	// compile here as the policy would in the webhook.
	compiler := ast.NewCompiler().WithCapabilities(capabilities()).WithEnablePrintStatements(true).WithDefaultRegoVersion(ast.RegoV1)
	r := tester.NewRunner().
		SetCompiler(compiler).
		SetStore(store).
		SetModules(modules).
		CapturePrintOutput(true).
		RaiseBuiltinErrors(true).
		Filter(sel.run).
		SetPrefixMatchers(sel.packages...)
	if sel.cov != nil {
		// Lines only: no supplementary runs (without rule indexing, without early exit),
		// which would evaluate every test three times to tag uncovered lines with why.
		r = r.SetCoverageQueryTracer(sel.cov).SetCoverageRuns(nil)
	} else {
		r = r.EnableTracing(true)
	}
	txn, err := store.NewTransaction(ctx)
	if err != nil {
		return nil, fmt.Errorf("open policy data: %w", err)
	}
	defer store.Abort(ctx, txn)
	ch, err := r.RunTests(ctx, txn)
	if err != nil {
		return nil, fmt.Errorf("run policy tests: %w", err)
	}
	var out []*tester.Result
	for res := range ch {
		out = append(out, res)
	}
	return out, nil
}

// PrintOptions say how much Print shows.
type PrintOptions struct {
	// Verbose lists every test, and shows failing tests' whole traces, built-in frames
	// included.
	Verbose bool
	// Uncovered lists the lines no test evaluated, per user file (per built-in file when
	// there are no user files).
	Uncovered bool
}

// Print writes each failing test (every test when verbose) and a summary, as PrintWith.
func (r TestReport) Print(w io.Writer, verbose bool) {
	r.PrintWith(w, PrintOptions{Verbose: verbose})
}

// PrintWith writes each failing test with where it failed and its trace, then "N passed, N
// failed", then the coverage of each user file and one line for the built-in files.
//
// A failing test is named with its file and line, then the expression that failed (with the
// values of its variables), then its trace: the lines in files that are not built-in (the
// user's), the built-in lines between them folded into a count — every file's when the test
// reaches no user file (a built-in test without user policies), the whole trace with
// opts.Verbose.
func (r TestReport) PrintWith(w io.Writer, opts PrintOptions) {
	for _, res := range r.Results {
		name := res.Package + "." + res.Name
		switch {
		case res.Error != nil:
			fmt.Fprintf(w, "ERROR %s (%s)\n", name, res.Location)
			fmt.Fprintf(w, "      %s\n", indentRest(res.Error.Error(), "      "))
		case res.Fail:
			fmt.Fprintf(w, "FAIL  %s (%s)\n", name, res.Location)
		default:
			if opts.Verbose {
				fmt.Fprintf(w, "PASS  %s (%s)\n", name, res.Location)
			}
			continue
		}
		if len(res.Output) > 0 {
			fmt.Fprintf(w, "      output: %s\n", indentRest(strings.TrimSpace(string(res.Output)), "              "))
		}
		printFailure(w, res, opts.Verbose)
	}
	switch {
	case len(r.Results) == 0 && r.Run != "":
		fmt.Fprintf(w, "no test matches --run %q\n", r.Run)
	default:
		fmt.Fprintf(w, "%d passed, %d failed\n", len(r.Results)-r.Failed(), r.Failed())
	}
	r.printCoverage(w, opts.Uncovered)
}

// printCoverage writes the coverage of each user file and one line for the built-in files, and
// with uncovered the lines not covered of each user file (of each built-in file when there
// are no user files).
func (r TestReport) printCoverage(w io.Writer, uncovered bool) {
	var user, builtin []FileCoverage
	for _, f := range r.Files {
		if f.Builtin {
			builtin = append(builtin, f)
		} else {
			user = append(user, f)
		}
	}
	fmt.Fprintln(w, "coverage (the lines of policy your tests evaluate; of the built-in files, their own tests):")
	width := len("built-in files")
	listed := user
	if len(user) == 0 {
		listed = builtin
	}
	for _, f := range listed {
		width = max(width, len(f.File))
	}
	for _, f := range user {
		note := ""
		switch {
		case !f.Measured && r.Run != "":
			note = "; none of your tests ran"
		case !f.Measured:
			note = "; you have no tests"
		case f.Covered == 0 && f.Lines > 0:
			note = "; none of your tests evaluates it"
		}
		fmt.Fprintf(w, "  %-*s  %5.1f%%  (%d of %d lines%s)\n", width, f.File, f.Percent(), f.Covered, f.Lines, note)
	}
	if len(builtin) > 0 {
		total := FileCoverage{Measured: true}
		for _, f := range builtin {
			total.Lines += f.Lines
			total.Covered += f.Covered
			total.Measured = total.Measured && f.Measured
		}
		if total.Measured {
			fmt.Fprintf(w, "  %-*s  %5.1f%%  (%d of %d lines, %d files)\n", width, "built-in files", total.Percent(), total.Covered, total.Lines, len(builtin))
		} else {
			fmt.Fprintf(w, "  %-*s  (no built-in test ran)\n", width, "built-in files")
		}
	}
	if !uncovered {
		return
	}
	fmt.Fprintln(w, "not covered:")
	n := 0
	for _, f := range listed {
		if len(f.Uncovered) > 0 {
			fmt.Fprintf(w, "  %s:%s\n", f.File, lineRanges(f.Uncovered))
			n++
		}
	}
	if n == 0 {
		fmt.Fprintln(w, "  (every line evaluated)")
	}
}

// lineRanges writes ascending lines as "3-5, 9, 12-13".
func lineRanges(lines []int) string {
	var parts []string
	for i := 0; i < len(lines); {
		j := i
		for j+1 < len(lines) && lines[j+1] == lines[j]+1 {
			j++
		}
		if i == j {
			parts = append(parts, fmt.Sprint(lines[i]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", lines[i], lines[j]))
		}
		i = j + 1
	}
	return strings.Join(parts, ", ")
}

// printFailure writes where a failing test failed and its trace.
func printFailure(w io.Writer, res *tester.Result, verbose bool) {
	if len(res.Trace) == 0 {
		return
	}
	// Focus on the user's files, unless the test never reaches one (a built-in test run
	// without user policies): then on every file.
	focus := func(file string) bool { return file != "" && !strings.HasPrefix(file, builtinPrefix) }
	reaches := slices.ContainsFunc(res.Trace, func(e *topdown.Event) bool { return e.Location != nil && focus(e.Location.File) })
	heading := "trace (your files; use -v for the whole trace):"
	switch {
	case !reaches:
		focus = func(file string) bool { return file != "" }
		heading = "trace (use -v for every event):"
	case res.Location != nil && strings.HasPrefix(res.Location.File, builtinPrefix):
		fmt.Fprintln(w, "      a built-in test, failing with your policies: t.denied and t.warned read your deny and warn sets too")
	}
	// An error says where it arose; a failure is shown by the expression that failed.
	if e := failedExpr(res.Trace); e != nil && res.Error == nil {
		fmt.Fprintf(w, "      %s:%d: this expression failed:\n", e.Location.File, e.Location.Row)
		var b strings.Builder
		if err := topdown.PrettyEvent(&b, e, topdown.PrettyEventOpts{PrettyVars: true}); err == nil {
			fmt.Fprintf(w, "        %s\n", indentRest(strings.TrimRight(dedentExpr(b.String()), "\n"), "        "))
		}
	}
	if verbose {
		fmt.Fprintln(w, "      trace:")
		topdown.PrettyTraceWithOpts(prefixWriter{w}, res.Trace, topdown.PrettyTraceOptions{Locations: true})
		return
	}
	fmt.Fprintln(w, "      "+heading)
	printFocusedTrace(w, res.Trace, focus)
}

// failedExpr is the expression a failing test failed on, as opa test --show-failure-line
// finds it: the last expression that failed (an every's body's rather than the every).
func failedExpr(trace []*topdown.Event) *topdown.Event {
	for _, e := range slices.Backward(trace) {
		if e.Op != topdown.FailOp || e.Location == nil || e.QueryID == 0 {
			continue
		}
		if expr, ok := e.Node.(*ast.Expr); !ok {
			continue
		} else if _, every := expr.Terms.(*ast.Every); every {
			continue
		}
		return e
	}
	return nil
}

// printFocusedTrace writes the events of trace in focused files — entering and leaving rules,
// evaluating and failing expressions; not unifications, index lookups or backtracking —
// indented by their depth in the whole trace, each run of events in other files folded into
// a count of its lines in the whole trace (what -v shows).
func printFocusedTrace(w io.Writer, trace []*topdown.Event, focus func(string) bool) {
	type line struct {
		loc, text string
		folded    int
	}
	var lines []line
	depths := map[uint64]int{}
	folded := 0
	var last *topdown.Event
	for _, e := range trace {
		d, ok := depths[e.QueryID]
		if !ok {
			d = depths[e.ParentID] + 1
			depths[e.QueryID] = d
		}
		if e.Location == nil || e.Location.File == "" {
			continue // the test's own query
		}
		if !focus(e.Location.File) {
			folded++
			continue
		}
		switch e.Op {
		case topdown.EnterOp, topdown.ExitOp:
			if _, ok := e.Node.(*ast.Rule); !ok {
				continue
			}
		case topdown.EvalOp, topdown.FailOp, topdown.NoteOp:
		default:
			continue
		}
		if last != nil && last.Op == e.Op && last.Location.Equal(e.Location) && last.QueryID == e.QueryID && folded == 0 {
			continue // one line per expression: a rewritten one evaluates in steps
		}
		if folded > 0 {
			lines = append(lines, line{folded: folded})
			folded = 0
		}
		last = e
		lines = append(lines, line{loc: fmt.Sprintf("%s:%d", e.Location.File, e.Location.Row), text: eventText(e, d)})
	}
	if folded > 0 {
		lines = append(lines, line{folded: folded})
	}
	width := 0
	for _, l := range lines {
		width = max(width, len(l.loc))
	}
	for _, l := range lines {
		if l.folded > 0 {
			fmt.Fprintf(w, "        … %d lines in built-in files\n", l.folded)
			continue
		}
		fmt.Fprintf(w, "        %-*s  %s\n", width, l.loc, l.text)
	}
}

// eventText is how OPA's trace shows event e at depth d ("| | Eval x = 1"), on one line.
func eventText(e *topdown.Event, d int) string {
	var b strings.Builder
	topdown.PrettyTraceWithOpts(&b, []*topdown.Event{e}, topdown.PrettyTraceOptions{})
	text := strings.TrimSpace(strings.TrimPrefix(b.String(), "| "))
	text, _, _ = strings.Cut(text, "\n")
	// The test's query is depth 1, its body 2: the test's own expressions get one bar.
	pad := d - 1
	if e.Op == topdown.EnterOp {
		pad = d - 2
	}
	return strings.Repeat("| ", max(pad, 0)) + clipLine(text, 160)
}

func clipLine(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// indentRest indents the lines of s after the first by prefix.
func indentRest(s, prefix string) string {
	return strings.ReplaceAll(s, "\n", "\n"+prefix)
}

// dedentExpr removes the indentation the expression's first line shares with the rest.
func dedentExpr(s string) string {
	lines := strings.Split(s, "\n")
	common := len(lines[0]) - len(strings.TrimLeft(lines[0], " \t"))
	for _, l := range lines[1:] {
		if strings.TrimSpace(l) == "" {
			continue
		}
		common = min(common, len(l)-len(strings.TrimLeft(l, " \t")))
	}
	for i, l := range lines {
		if len(l) >= common {
			lines[i] = l[common:]
		}
	}
	return strings.Join(lines, "\n")
}

type prefixWriter struct{ w io.Writer }

func (p prefixWriter) Write(b []byte) (int, error) {
	for _, line := range strings.SplitAfter(string(b), "\n") {
		if line != "" {
			fmt.Fprint(p.w, "      | "+line)
		}
	}
	return len(b), nil
}
