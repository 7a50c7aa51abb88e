package policies

import (
	"context"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// A policy that would run for minutes fails the evaluation at the engine's Timeout.
func TestEngineTimeout(t *testing.T) {
	src := Builtin()
	src.Modules = maps.Clone(src.Modules)
	src.Modules["user/slow.rego"] = `package credgate.admission

deny contains {"rule": "slow", "credential": "", "message": "never"} if {
	count([x | some x in numbers.range(1, 1000000000); x % 7 == 3]) < 0
}
`
	rev, err := Compile(t.Context(), src)
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(rev)
	e.Timeout = 100 * time.Millisecond
	// Without the timeout this evaluation runs for minutes, and the test with it.
	_, err = e.Evaluate(t.Context(), ast.NewObject())
	if err == nil || !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "deadline") && !strings.Contains(err.Error(), "cancel") {
		t.Fatalf("error %v, want the deadline", err)
	}
}
