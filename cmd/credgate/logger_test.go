package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

// What client-go logs through klog comes out of credgate's logger as JSON lines, like
// everything else it logs.
func TestKlogGoesThroughTheJSONLogger(t *testing.T) {
	var buf bytes.Buffer
	log, sync := newLogger(0, &buf)
	log.Info("from credgate", "key", "value")
	klog.InfoS("from client-go", "lease", "credgate-leader")
	klog.ErrorS(nil, "server rejected event")
	klog.Flush()
	sync()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3:\n%s", len(lines), buf.String())
	}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["msg"] == nil {
			t.Errorf("not a JSON log line: %s", l)
		}
	}
}
