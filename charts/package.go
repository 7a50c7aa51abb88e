package charts

import (
	"fmt"
	"time"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
)

// Package writes the chart of dir as outDir/<name>-<version>.tgz, as helm package does, and
// returns its path. It first renders the chart in both certificate modes, so that a chart
// that does not render is never packaged. A non-nil modTime stamps every file of the archive
// with it (helm package's SOURCE_DATE_EPOCH), so that one commit always gives the same archive.
func Package(dir, outDir string, modTime *time.Time) (string, error) {
	ch, err := loader.LoadDir(dir)
	if err != nil {
		return "", err
	}
	if _, err := semver.StrictNewVersion(ch.Metadata.Version); err != nil {
		return "", fmt.Errorf("%s: version %q: %w", dir, ch.Metadata.Version, err)
	}
	for _, mode := range []string{"self", "cert-manager"} {
		values := map[string]any{"certificates": map[string]any{"mode": mode}}
		if _, err := RenderChart(ch, ReleaseName, Namespace, values); err != nil {
			return "", fmt.Errorf("%s does not render (certificates.mode=%s): %w", dir, mode, err)
		}
	}
	if modTime != nil {
		ch.StampModTimes(*modTime)
	}
	return chartutil.Save(ch, outDir)
}
