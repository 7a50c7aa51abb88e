// Package charts holds credgate's Helm chart (charts/credgate) and renders it as `helm template
// --include-crds` would, client-side, with the Helm v4 SDK: the chart's tests compare what it
// installs with the kustomize install of manifests/, and the end-to-end tests dry-run it against
// a real API server.
//
// It uses Helm's chart loader, values (defaults, schema validation) and template engine
// directly rather than action.Install in client-only mode: those are the steps helm template
// runs, and action would bring Helm's cluster client, release storage drivers, OCI registry
// client and plugin runtime into this module for a fake client and an in-memory release.
package charts

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strings"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	"helm.sh/helm/v4/pkg/chart/loader/archive"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
	"helm.sh/helm/v4/pkg/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// The release the kustomize install corresponds to: credgate in credgate-system, the namespace
// of manifests/, of credgate's flag defaults and of the docs.
const (
	ReleaseName = "credgate"
	Namespace   = "credgate-system"
)

// KubeVersion is the Kubernetes version the chart is rendered for: the lowest its Chart.yaml
// accepts (kubeVersion). Helm's own default in client-only mode is 1.20 in tests, which the
// chart refuses; the templates do not depend on the version otherwise.
const KubeVersion = "v1.30.0"

// Dir is the chart's directory, relative to this package's.
const Dir = "credgate"

// The chart, embedded so that Render works from any directory (tests of other packages run in
// theirs). all: keeps templates/_helpers.tpl, which embed would otherwise skip.
//
//go:embed all:credgate
var chartFS embed.FS

// Release is what Render makes of a chart: its objects (the CRDs of crds/ first, then the
// templates' in file order) and its NOTES.txt.
type Release struct {
	Objects []*unstructured.Unstructured
	Notes   string
}

// Load returns the embedded chart.
func Load() (*chart.Chart, error) {
	var files []*archive.BufferedFile
	err := fs.WalkDir(chartFS, Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := chartFS.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, &archive.BufferedFile{Name: strings.TrimPrefix(p, Dir+"/"), Data: data})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return loader.LoadFiles(files)
}

// Render renders the chart with values (nil: the defaults) as the release ReleaseName in
// Namespace, and returns its objects.
func Render(values map[string]any) ([]*unstructured.Unstructured, error) {
	rel, err := RenderRelease(ReleaseName, Namespace, values)
	if err != nil {
		return nil, err
	}
	return rel.Objects, nil
}

// RenderRelease renders the embedded chart with values as the release name in namespace.
func RenderRelease(name, namespace string, values map[string]any) (*Release, error) {
	ch, err := Load()
	if err != nil {
		return nil, err
	}
	return RenderChart(ch, name, namespace, values)
}

// RenderChart renders ch as helm install would render it for the release name in namespace:
// the chart's kubeVersion checked, values coalesced with the chart's defaults and validated
// against values.schema.json, the templates rendered as Helm renders them (a value set to null
// removes the default, and reads as empty), NOTES.txt set apart, and the CRDs of crds/
// included as they are, untemplated.
func RenderChart(ch *chart.Chart, name, namespace string, values map[string]any) (*Release, error) {
	kv, err := common.ParseKubeVersion(KubeVersion)
	if err != nil {
		return nil, err
	}
	caps := common.DefaultCapabilities.Copy()
	caps.KubeVersion = *kv
	if c := ch.Metadata.KubeVersion; c != "" && !chartutil.IsCompatibleRange(c, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart requires kubeVersion %s, incompatible with Kubernetes %s", c, caps.KubeVersion.Version)
	}
	if values == nil {
		values = map[string]any{}
	}
	opts := common.ReleaseOptions{Name: name, Namespace: namespace, Revision: 1, IsInstall: true}
	renderValues, err := util.ToRenderValuesWithSchemaValidation(ch, values, opts, caps, false)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(ch, renderValues)
	if err != nil {
		return nil, err
	}

	rel := &Release{}
	for _, crd := range ch.CRDObjects() {
		objs, err := parseObjects(crd.Name, crd.File.Data)
		if err != nil {
			return nil, err
		}
		rel.Objects = append(rel.Objects, objs...)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if path.Base(n) == "NOTES.txt" {
			rel.Notes = files[n]
			continue
		}
		objs, err := parseObjects(n, []byte(files[n]))
		if err != nil {
			return nil, err
		}
		rel.Objects = append(rel.Objects, objs...)
	}
	return rel, nil
}

// parseObjects parses the YAML documents of a rendered file; empty ones (a template whose
// condition is false, comments only) are skipped, as Helm skips them.
func parseObjects(name string, data []byte) ([]*unstructured.Unstructured, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []*unstructured.Unstructured
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("%s, document %d: %w\n%s", name, i, err, doc)
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetAPIVersion() == "" || u.GetKind() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("%s, document %d: an object needs apiVersion, kind and metadata.name\n%s", name, i, doc)
		}
		objs = append(objs, u)
	}
}
