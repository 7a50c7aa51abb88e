package webhook

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestConfigurationsGenerated: the webhook configurations of the kustomize manifests and of the
// Helm chart are those Kinds give (go test ./webhook/ -run TestConfigurationsGenerated -update,
// which make generate runs, rewrites them).
func TestConfigurationsGenerated(t *testing.T) {
	for _, f := range []struct {
		path  string
		chart bool
	}{{ManifestFile, false}, {ChartFile, true}} {
		path := filepath.Join("..", f.path)
		want := Configurations(f.chart)
		if *update {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(want), string(got)); diff != "" {
			t.Errorf("%s is not what workload.Kinds give: run make generate (-generated +file):\n%s", f.path, diff)
		}
	}
}
