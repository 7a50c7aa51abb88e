package benchenv

import (
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP go_memstats_heap_inuse_bytes Number of heap bytes that are in use.
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 4.2e+07
go_goroutines 87
credgate_admission_requests_total{operation="CREATE",path="/mutate-v1-pod",result="admitted"} 1000
credgate_admission_requests_total{operation="CREATE",path="/validate-v1-pod",result="admitted, with \"}\""} 998
`
	m, err := ParseMetrics(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]float64{"go_memstats_heap_inuse_bytes": 42e6, "go_goroutines": 87, "credgate_admission_requests_total": 1998} {
		if m[name] != want {
			t.Errorf("%s = %v, want %v", name, m[name], want)
		}
	}
}
