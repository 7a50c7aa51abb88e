package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// One version everywhere: the image the kustomize manifests deploy, the chart's appVersion
// (its default image tag) and version, and the newest release in CHANGELOG.md. A release
// bumps them together; the release workflow checks the tag against them too.
func TestOneVersion(t *testing.T) {
	var chart struct{ Version, AppVersion string }
	data, err := os.ReadFile("../../charts/credgate/Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &chart); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`).MatchString(chart.AppVersion) || chart.Version != strings.TrimPrefix(chart.AppVersion, "v") {
		t.Errorf("Chart.yaml: version %q, appVersion %q: want X.Y.Z and vX.Y.Z", chart.Version, chart.AppVersion)
	}
	changelog, err := os.ReadFile("../../CHANGELOG.md")
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^## \[(v[^\]]+)\]`).FindSubmatch(changelog); m == nil || string(m[1]) != chart.AppVersion {
		t.Errorf("CHANGELOG.md's newest release is %q, the chart's appVersion %q", m, chart.AppVersion)
	}
	out := t.TempDir()
	if err := run("../..", out, ""); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"credgate.yaml", "credgate-cert-manager.yaml"} {
		images := imagesIn(t, filepath.Join(out, f))
		if len(images) != 2 {
			t.Errorf("%s runs %d credgate containers, want 2 (serve and refresher): %q", f, len(images), images)
		}
		for _, img := range images {
			if img != defaultImage+":"+chart.AppVersion {
				t.Errorf("%s deploys %s, want %s:%s", f, img, defaultImage, chart.AppVersion)
			}
		}
	}
}

// -image replaces the image of every credgate container, by tag or by digest.
func TestRenderSetsTheImage(t *testing.T) {
	for _, image := range []string{"registry.example.com/mirror/credgate:v9.9.9", "localhost:5000/credgate@sha256:0123"} {
		out := t.TempDir()
		if err := run("../..", out, image); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"credgate.yaml", "credgate-cert-manager.yaml"} {
			images := imagesIn(t, filepath.Join(out, f))
			if len(images) != 2 || images[0] != image || images[1] != image {
				t.Errorf("-image %s: %s runs %q", image, f, images)
			}
		}
		if crds, err := os.ReadFile(filepath.Join(out, "crds.yaml")); err != nil || !strings.Contains(string(crds), "name: credentials.credgate.dev") {
			t.Errorf("crds.yaml: %v", err)
		}
	}
	for _, entry := range mustReadDir(t, "..") {
		if strings.HasPrefix(entry, ".render-") {
			t.Errorf("manifests/%s left behind", entry)
		}
	}
}

var imageLine = regexp.MustCompile(`(?m)^\s+image: (\S+)$`)

func imagesIn(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var images []string
	for _, m := range imageLine.FindAllStringSubmatch(string(data), -1) {
		images = append(images, m[1])
	}
	return images
}

func mustReadDir(t *testing.T, dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// The release ships the alerts: credgate-monitoring.yaml is the PrometheusRule of
// manifests/monitoring.
func TestRenderShipsTheAlerts(t *testing.T) {
	out := t.TempDir()
	if err := run("../..", out, ""); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(out, "credgate-monitoring.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var rule struct {
		APIVersion, Kind string
		Spec             struct {
			Groups []struct{ Rules []struct{ Alert string } }
		}
	}
	if err := yaml.Unmarshal(data, &rule); err != nil {
		t.Fatal(err)
	}
	if rule.APIVersion != "monitoring.coreos.com/v1" || rule.Kind != "PrometheusRule" || len(rule.Spec.Groups) == 0 || len(rule.Spec.Groups[0].Rules) == 0 {
		t.Errorf("credgate-monitoring.yaml: %s %s with %d groups, want a PrometheusRule with the alerts", rule.APIVersion, rule.Kind, len(rule.Spec.Groups))
	}
}
