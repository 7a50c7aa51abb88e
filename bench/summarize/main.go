// Command summarize writes the benchmark figures the docs quote from bench/results.txt, so
// the docs never quote a run other than the one committed beside them. `make bench` runs it
// after the benchmarks; its test fails when a doc and results.txt disagree.
//
// A doc marks each generated table with a pair of comments naming it:
//
//	<!-- bench:audit -->
//	... (generated) ...
//	<!-- /bench:audit -->
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// row is one line of a generated table: a benchmark (without the -GOMAXPROCS suffix), what it
// measures, and, when its rate is worth saying, what one operation is ("records").
type row struct {
	bench, label, per string
}

// tables are the generated tables, by name, and the doc (relative to the repository) holding
// each.
var tables = []struct {
	name, doc string
	rows      []row
}{
	{"admission", "README.md", admissionRows},
	{"admission", "docs/performance.md", admissionRows},
	{"audit", "docs/audit.md", []row{
		{"BenchmarkFileSink/writers=1", "every record its own fsync", "records"},
		{"BenchmarkFileSink/writers=8xGOMAXPROCS", "16 concurrent writers", "records"},
		{"BenchmarkFileSink/writers=64xGOMAXPROCS", "128 concurrent writers", "records"},
		{"BenchmarkDenial/audit-file=false", "refusals from 16 clients, no audit", "denials"},
		{"BenchmarkDenial/audit-file=true", "the same, with the durable file", "denials"},
	}},
}

// admissionRows are the admission path's figures, each also as a multiple of the floor's.
var admissionRows = []row{
	{"BenchmarkFloor", "the floor: decode the review and the pod, encode a response", ""},
	{"BenchmarkHandler/policy=none", "the full admission without policies", ""},
	{"BenchmarkHandler/policy=builtin", "the full admission with the built-in policies", "admissions"},
	{"BenchmarkHandler/policy=builtin,reused", "the same pod again: the next pod of a Job, its decision reused", "admissions"},
	{"BenchmarkPolicyEvaluate/prebuilt", "policy evaluation alone", ""},
}

// floor is the benchmark the admission rows are compared with.
const floor = "BenchmarkFloor"

func main() {
	root := flag.String("root", ".", "the repository")
	check := flag.Bool("check", false, "report docs that disagree with the results instead of rewriting them")
	flag.Parse()
	if err := run(*root, *check, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "summarize:", err)
		os.Exit(1)
	}
}

func run(root string, check bool, out io.Writer) error {
	f, err := os.Open(filepath.Join(root, "bench", "results.txt"))
	if err != nil {
		return err
	}
	defer f.Close()
	results, err := parse(f)
	if err != nil {
		return err
	}
	var stale []string
	for _, t := range tables {
		path := filepath.Join(root, t.doc)
		doc, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		table, err := render(results, t.rows)
		if err != nil {
			return fmt.Errorf("table %s: %w", t.name, err)
		}
		updated, err := replace(doc, t.name, table)
		if err != nil {
			return fmt.Errorf("%s: %w", t.doc, err)
		}
		if bytes.Equal(doc, updated) {
			continue
		}
		if check {
			stale = append(stale, t.doc)
			continue
		}
		if err := os.WriteFile(path, updated, 0o644); err != nil {
			return err
		}
		fmt.Fprintf(out, "updated the %s table in %s\n", t.name, t.doc)
	}
	if len(stale) > 0 {
		return fmt.Errorf("%s quote figures other than bench/results.txt's: run `go run ./bench/summarize`", strings.Join(stale, ", "))
	}
	return nil
}

// result is a benchmark's median time and allocations per operation over its runs.
type result struct {
	nsPerOp, allocsPerOp float64
	runs                 int
}

var procSuffix = regexp.MustCompile(`-\d+$`)

// parse reads `go test -bench -benchmem` lines and returns each benchmark's medians. Any line
// that is not a benchmark line is an error: results.txt holds benchmark lines only.
func parse(r io.Reader) (map[string]result, error) {
	samples := map[string][2][]float64{}
	s := bufio.NewScanner(r)
	for n := 1; s.Scan(); n++ {
		fields := strings.Fields(s.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			return nil, fmt.Errorf("results.txt line %d is not a benchmark line: %q", n, s.Text())
		}
		name := procSuffix.ReplaceAllString(fields[0], "")
		v := samples[name]
		for i := 2; i+1 < len(fields); i += 2 {
			x, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			switch fields[i+1] {
			case "ns/op":
				v[0] = append(v[0], x)
			case "allocs/op":
				v[1] = append(v[1], x)
			}
		}
		samples[name] = v
	}
	if err := s.Err(); err != nil {
		return nil, err
	}
	out := map[string]result{}
	for name, v := range samples {
		out[name] = result{nsPerOp: median(v[0]), allocsPerOp: median(v[1]), runs: len(v[0])}
	}
	return out, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	xs = slices.Clone(xs)
	slices.Sort(xs)
	if len(xs)%2 == 1 {
		return xs[len(xs)/2]
	}
	return (xs[len(xs)/2-1] + xs[len(xs)/2]) / 2
}

func render(results map[string]result, rows []row) (string, error) {
	var b strings.Builder
	base, vsFloor := results[floor]
	vsFloor = vsFloor && slices.ContainsFunc(rows, func(r row) bool { return r.bench == floor })
	if vsFloor {
		b.WriteString("| benchmark | per operation | allocations | × the floor (time, allocations) | throughput |\n| --- | --- | --- | --- | --- |\n")
	} else {
		b.WriteString("| benchmark | per operation | allocations | throughput |\n| --- | --- | --- | --- |\n")
	}
	runs := 0
	for _, r := range rows {
		res, ok := results[r.bench]
		if !ok {
			return "", fmt.Errorf("bench/results.txt has no %s", r.bench)
		}
		runs = res.runs
		rate := "—"
		if r.per != "" {
			rate = "≈ " + round(1e9/res.nsPerOp, 2) + " " + r.per + "/s"
		}
		ratio := ""
		if vsFloor {
			ratio = " " + round(res.nsPerOp/base.nsPerOp, 2) + "×, " + round(res.allocsPerOp/base.allocsPerOp, 2) + "× |"
		}
		fmt.Fprintf(&b, "| `%s` (%s) | ≈ %s | %s |%s %s |\n", r.bench, r.label, duration(res.nsPerOp), round(res.allocsPerOp, 3), ratio, rate)
	}
	fmt.Fprintf(&b, "\nMedians of %d interleaved rounds in `bench/results.txt` (`make bench`: each round runs every benchmark once, on the 2-core development machine; timings there move by ±30%% from round to round).\n", runs)
	return b.String(), nil
}

// duration formats ns to two significant digits in a readable unit.
func duration(ns float64) string {
	switch {
	case ns >= 1e6:
		return round(ns/1e6, 2) + " ms"
	case ns >= 1e3:
		return round(ns/1e3, 2) + " µs"
	}
	return round(ns, 2) + " ns"
}

// round formats x to sig significant digits, with thousands separators.
func round(x float64, sig int) string {
	if x == 0 || math.IsNaN(x) {
		return "0"
	}
	p := math.Pow(10, float64(sig-1-int(math.Floor(math.Log10(math.Abs(x))))))
	x = math.Round(x*p) / p
	decimals := 0
	if p > 1 {
		decimals = int(math.Round(math.Log10(p)))
	}
	s := strconv.FormatFloat(x, 'f', decimals, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	frac = strings.TrimRight(frac, "0")
	for i := len(intPart) - 3; i > 0; i -= 3 {
		intPart = intPart[:i] + "," + intPart[i:]
	}
	if frac != "" {
		return intPart + "." + frac
	}
	return intPart
}

// replace puts table between the markers of name in doc.
func replace(doc []byte, name, table string) ([]byte, error) {
	begin, end := []byte("<!-- bench:"+name+" -->\n"), []byte("<!-- /bench:"+name+" -->")
	i := bytes.Index(doc, begin)
	j := bytes.Index(doc, end)
	if i < 0 || j < i {
		return nil, errors.New("no <!-- bench:" + name + " --> ... <!-- /bench:" + name + " --> markers")
	}
	out := slices.Clone(doc[:i+len(begin)])
	out = append(out, table...)
	return append(out, doc[j:]...), nil
}
