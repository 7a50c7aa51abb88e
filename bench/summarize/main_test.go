package main

import (
	"io"
	"strings"
	"testing"
)

// The docs quote the committed bench/results.txt, and nothing else.
func TestDocsQuoteResults(t *testing.T) {
	if err := run("../..", true, io.Discard); err != nil {
		t.Fatal(err)
	}
}

func TestParseRefusesOtherLines(t *testing.T) {
	_, err := parse(strings.NewReader("BenchmarkX-2 10 100 ns/op 3 allocs/op\nPASS\n"))
	if err == nil || !strings.Contains(err.Error(), "line 2 is not a benchmark line") {
		t.Fatalf("err = %v", err)
	}
	r, err := parse(strings.NewReader("BenchmarkX-2 10 100 ns/op 2.5 MB/s 3 allocs/op\nBenchmarkX-2 10 300 ns/op 5 allocs/op\nBenchmarkX-2 10 200 ns/op 4 allocs/op\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := r["BenchmarkX"]; got.nsPerOp != 200 || got.allocsPerOp != 4 || got.runs != 3 {
		t.Errorf("BenchmarkX = %+v, want the medians 200 ns and 4 allocations of 3 runs", got)
	}
}

func TestRound(t *testing.T) {
	for x, want := range map[float64]string{3846.2: "3,800", 0.0361: "0.036", 36.1: "36", 3.0: "3", 1172: "1,200", 112345: "110,000", 2.354: "2.4"} {
		if got := round(x, 2); got != want {
			t.Errorf("round(%v) = %q, want %q", x, got, want)
		}
	}
}
