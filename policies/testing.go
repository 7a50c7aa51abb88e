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

// TestReport is the outcome of running a Source's Rego tests.
type TestReport struct {
	Results []*tester.Result
	// Coverage is the percentage of the modules' (not the tests') lines the tests evaluated.
	Coverage float64
	// Uncovered maps a module file to its lines no test evaluated.
	Uncovered map[string][]int
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

// RunTests runs every test_ rule of src's tests against its modules and data, with coverage.
// A user file (not one of the built-in files) declaring a reserved package is refused, as
// Compile refuses it.
// When a test fails, the failing tests run again with tracing (OPA cannot trace and measure
// coverage in one run), so Print can show how they evaluated.
func RunTests(ctx context.Context, src Source) (TestReport, error) {
	modules := make(map[string]*ast.Module, len(src.Modules)+len(src.Tests))
	var errs []error
	for i, files := range []map[string]string{src.Modules, src.Tests} {
		for name, text := range files {
			m, err := ast.ParseModuleWithOpts(name, text, parserOptions)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if !isBuiltin(name, text) {
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
	cov := cover.New()
	results, err := runTests(ctx, src, modules, cov, "")
	if err != nil {
		return TestReport{}, err
	}
	rep := TestReport{Results: results}
	if rep.Failed() > 0 {
		var failed []string
		for _, res := range results {
			if !res.Pass() {
				failed = append(failed, "^"+regexp.QuoteMeta(res.Package+"."+res.Name)+"$")
			}
		}
		traced, err := runTests(ctx, src, modules, nil, strings.Join(failed, "|"))
		if err != nil {
			return TestReport{}, err
		}
		rep.Results = slices.DeleteFunc(rep.Results, func(r *tester.Result) bool { return !r.Pass() })
		rep.Results = append(rep.Results, traced...)
	}
	code := map[string]*ast.Module{}
	for name := range src.Modules {
		code[name] = modules[name]
	}
	c := cov.Report(code)
	rep.Coverage = c.Coverage
	rep.Uncovered = map[string][]int{}
	for file, fc := range c.Files {
		for _, r := range fc.NotCovered {
			for l := r.Start.Row; l <= r.End.Row; l++ {
				rep.Uncovered[file] = append(rep.Uncovered[file], l)
			}
		}
	}
	return rep, nil
}

// runTests runs the tests matching filter (all when empty): with coverage when cov is set,
// with tracing when it is not.
func runTests(ctx context.Context, src Source, modules map[string]*ast.Module, cov *cover.Cover, filter string) ([]*tester.Result, error) {
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
		Filter(filter)
	if cov != nil {
		r = r.SetCoverageQueryTracer(cov)
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

// Print writes a line per failing test with its trace (every test when verbose), then a summary
// "N passed, N failed" and the coverage.
func (r TestReport) Print(w io.Writer, verbose bool) {
	slices.SortFunc(r.Results, func(a, b *tester.Result) int {
		return strings.Compare(a.Location.File+a.Name, b.Location.File+b.Name)
	})
	for _, res := range r.Results {
		switch {
		case res.Error != nil:
			fmt.Fprintf(w, "ERROR %s %s: %v\n", res.Location.File, res.Name, res.Error)
		case res.Fail:
			fmt.Fprintf(w, "FAIL  %s %s (%s)\n", res.Location.File, res.Name, res.Location)
			if len(res.Output) > 0 {
				fmt.Fprintf(w, "      output: %s\n", strings.TrimSpace(string(res.Output)))
			}
			if len(res.Trace) > 0 {
				topdown.PrettyTraceWithOpts(prefixWriter{w}, res.Trace, topdown.PrettyTraceOptions{Locations: true})
			}
		case verbose:
			fmt.Fprintf(w, "PASS  %s %s\n", res.Location.File, res.Name)
		}
	}
	fmt.Fprintf(w, "%d passed, %d failed\n", len(r.Results)-r.Failed(), r.Failed())
	fmt.Fprintf(w, "coverage: %.1f%% of policy lines\n", r.Coverage)
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
