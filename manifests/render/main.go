// Command render writes the release's install manifests: the kustomize overlays rendered to
// one file each (credgate.yaml with self-managed certificates, credgate-cert-manager.yaml) and
// the CRDs alone (crds.yaml, for `helm upgrade`, which never upgrades a chart's CRDs), and
// the alerts (credgate-monitoring.yaml, a PrometheusRule for the Prometheus Operator). The
// release workflow attaches them to the release; `make release-assets` runs it.
//
//	go run ./manifests/render -o bin/release [-image registry/credgate:tag]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/kustomize/api/resmap"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/yaml"

	"github.com/credgate/credgate/manifests"
)

// defaultImage is the image the manifests deploy; -image replaces it.
const defaultImage = "ghcr.io/credgate/credgate"

func main() {
	out := flag.String("o", "bin/release", "directory to write the manifests into")
	root := flag.String("root", ".", "the repository")
	image := flag.String("image", "", "deploy this image (name:tag or name@digest) instead of the manifests' own")
	flag.Parse()
	if err := run(*root, *out, *image); err != nil {
		fmt.Fprintln(os.Stderr, "render:", err)
		os.Exit(1)
	}
}

func run(root, out, image string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	for file, dir := range map[string]string{
		"credgate.yaml":              "overlays/self-managed",
		"credgate-cert-manager.yaml": "overlays/cert-manager",
		"crds.yaml":                  "crd",
		"credgate-monitoring.yaml":   "monitoring",
	} {
		rm, err := build(filepath.Join(root, "manifests", dir), image)
		if err != nil {
			return err
		}
		data, err := rm.AsYaml()
		if err != nil {
			return err
		}
		header := fmt.Sprintf("# credgate: manifests/%s rendered by manifests/render. Apply with kubectl apply --server-side -f %s\n", dir, file)
		if err := os.WriteFile(filepath.Join(out, file), append([]byte(header), data...), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// build runs kustomize on dir, as `kubectl apply -k` does; with image, through a kustomization
// of its own that sets it, as `kustomize edit set image` would.
func build(dir, image string) (resmap.ResMap, error) {
	target := dir
	if image != "" {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, err
		}
		// Beside dir, so the overlay is a relative path, as kustomize requires.
		target, err = os.MkdirTemp(filepath.Dir(abs), ".render-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(target)
		img := types.Image{Name: defaultImage}
		img.NewName, img.NewTag, img.Digest = splitImage(image)
		kust, err := yaml.Marshal(types.Kustomization{Resources: []string{"../" + filepath.Base(abs)}, Images: []types.Image{img}})
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(target, "kustomization.yaml"), kust, 0o644); err != nil {
			return nil, err
		}
	}
	return manifests.Build(target)
}

// splitImage splits name[:tag][@digest].
func splitImage(ref string) (name, tag, digest string) {
	ref, digest, _ = strings.Cut(ref, "@")
	name = ref
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		name, tag = ref[:i], ref[i+1:]
	}
	return name, tag, digest
}
