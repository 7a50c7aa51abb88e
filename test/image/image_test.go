// Package image_test checks the image `make image` builds as a cluster would run it: the
// platforms, the entrypoint and user, the binary in each, the CA bundle and zone files it
// reads, the SBOM beside it, and that building it again gives the same digest.
package image_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/credgate/credgate/test/image/base"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

const (
	entrypoint = "/ko-app/credgate"
	// The annotations ko gives an image: what it was built on.
	baseNameKey   = "org.opencontainers.image.base.name"
	baseDigestKey = "org.opencontainers.image.base.digest"
)

var platforms = []string{"linux/amd64", "linux/arm64"}

// env returns the variable the Makefile sets, else def (running `go test` by hand).
func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// openImage returns the image index of the OCI layout at dir, built by ko.
func openImage(t *testing.T, dir, hint string) v1.ImageIndex {
	t.Helper()
	outer, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatalf("no image at %s (%v): run `%s`", dir, err, hint)
	}
	im, err := outer.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 1 {
		t.Fatalf("%s holds %d entries, want ko's one index: run `%s` (it starts afresh)", dir, len(im.Manifests), hint)
	}
	idx, err := outer.ImageIndex(im.Manifests[0].Digest)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return idx
}

func layoutDir() string { return env("IMAGE_LAYOUT", "../../bin/image/credgate") }

// stamp returns what the Makefile stamped into the binary (VERSION or COMMIT), or, when
// `go test` runs by hand, what it would stamp for this tree.
func stamp(t *testing.T, key string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	args := map[string][]string{
		"VERSION": {"describe", "--tags", "--always", "--dirty"},
		"COMMIT":  {"rev-parse", "HEAD"},
	}[key]
	out, err := exec.Command("git", append([]string{"-C", "../.."}, args...)...).Output()
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out))
}

func TestImage(t *testing.T) {
	idx := openImage(t, layoutDir(), "make image")
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range im.Manifests {
		got = append(got, d.Platform.String())
	}
	if strings.Join(got, " ") != strings.Join(platforms, " ") {
		t.Fatalf("platforms %q, want %q", got, platforms)
	}
	bases := baseDigests(t, im)

	for _, d := range im.Manifests {
		t.Run(d.Platform.String(), func(t *testing.T) {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			if cfg.OS != d.Platform.OS || cfg.Architecture != d.Platform.Architecture {
				t.Errorf("config says %s/%s", cfg.OS, cfg.Architecture)
			}
			if strings.Join(cfg.Config.Entrypoint, " ") != entrypoint {
				t.Errorf("entrypoint %q, want %q", cfg.Config.Entrypoint, entrypoint)
			}
			// runAsNonRoot needs a numeric user; "65532" (distroless) and "65532:65532" both are.
			if uid, _, _ := strings.Cut(cfg.Config.User, ":"); uid != "65532" {
				t.Errorf("user %q, want 65532 (nonroot)", cfg.Config.User)
			}
			for label, key := range map[string]string{"version": "VERSION", "revision": "COMMIT"} {
				if got, want := cfg.Config.Labels["org.opencontainers.image."+label], stamp(t, key); got != want {
					t.Errorf("label org.opencontainers.image.%s %q, want %q", label, got, want)
				}
			}
			// ko records the base of each image in its manifest (the index's annotation names the
			// base index as ko re-annotated it, not as it was built).
			m, err := img.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if want := bases[d.Platform.String()]; bases != nil && m.Annotations[baseDigestKey] != want {
				t.Errorf("built on %s (%s), want the base of base.lock %s@%s",
					m.Annotations[baseNameKey], m.Annotations[baseDigestKey], base.Repo, want)
			}
			checkFiles(t, readFS(t, img), d.Platform.Architecture)
		})
	}
}

// baseDigests returns, per platform, the digest of the base image each image of the index
// must have been built on: the base the lock gives, or BASE_IMAGE if the Makefile says so
// (then only its name is known here, and the index must carry it).
func baseDigests(t *testing.T, im *v1.IndexManifest) map[string]string {
	if b := os.Getenv("BASE_IMAGE"); b != "" {
		ref, err := name.ParseReference(b)
		if err != nil {
			t.Fatal(err)
		}
		if im.Annotations[baseNameKey] != ref.Name() {
			t.Errorf("built on %q, want BASE_IMAGE %q", im.Annotations[baseNameKey], ref.Name())
		}
		return nil
	}
	bim, err := buildBase(t).IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, d := range bim.Manifests {
		want[d.Platform.String()] = d.Digest.String()
	}
	return want
}

func buildBase(t *testing.T) v1.ImageIndex {
	t.Helper()
	l, err := base.ReadLock("base.lock")
	if err != nil {
		t.Fatal(err)
	}
	var plats []v1.Platform
	for _, s := range platforms {
		p, _ := v1.ParsePlatform(s)
		plats = append(plats, *p)
	}
	f := &base.Fetcher{CacheDir: "../../bin/image/debs", Mirror: os.Getenv("DEBIAN_MIRROR")}
	idx, err := base.Build(context.Background(), l, f, plats)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func checkFiles(t *testing.T, fs imageFS, arch string) {
	bin := fs.read(t, entrypoint)
	if fs[entrypoint].hdr.Mode&0o111 == 0 {
		t.Errorf("%s is not executable: mode %o", entrypoint, fs[entrypoint].hdr.Mode)
	}
	ef, err := elf.NewFile(bytes.NewReader(bin))
	if err != nil {
		t.Fatalf("%s: %v", entrypoint, err)
	}
	if want := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]; ef.Machine != want {
		t.Errorf("%s is built for %v, want %v", entrypoint, ef.Machine, want)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Errorf("%s is dynamically linked, and the base has no libc", entrypoint)
		}
	}

	// credgate calls AWS STS over TLS: Go reads this bundle, which must hold Amazon's roots.
	var n int
	var amazon bool
	for rest := fs.read(t, base.BundlePath); ; {
		var block *pem.Block
		if block, rest = pem.Decode(rest); block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatalf("%s: certificate %d: %v", base.BundlePath, n+1, err)
		}
		n++
		amazon = amazon || c.Subject.CommonName == "Amazon Root CA 1"
	}
	if n < 100 || !amazon {
		t.Errorf("%s: %d certificates, Amazon Root CA 1 among them: %v; want Mozilla's 100 and more", base.BundlePath, n, amazon)
	}

	for zone, offset := range map[string]time.Duration{"UTC": 0, "America/New_York": -5 * time.Hour} {
		loc, err := time.LoadLocationFromTZData(zone, fs.read(t, "/usr/share/zoneinfo/"+zone))
		if err != nil {
			t.Errorf("zone %s: %v", zone, err)
			continue
		}
		if _, off := time.Date(2026, 1, 15, 12, 0, 0, 0, loc).Zone(); time.Duration(off)*time.Second != offset {
			t.Errorf("zone %s: offset %ds in January", zone, off)
		}
	}

	for file, prefix := range map[string]string{"/etc/passwd": "nonroot:x:65532:65532:", "/etc/group": "nonroot:x:65532:"} {
		lines := strings.Split(string(fs.read(t, file)), "\n")
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, prefix) }) {
			t.Errorf("%s has no line %s...:\n%s", file, prefix, strings.Join(lines, "\n"))
		}
	}
	if h := fs.entry(t, "/tmp").hdr; h.Typeflag != tar.TypeDir || h.Mode&0o1777 != 0o1777 {
		t.Errorf("/tmp: mode %o, want a directory with mode 1777", h.Mode)
	}
	if h := fs.entry(t, "/home/nonroot").hdr; h.Uid != 65532 {
		t.Errorf("/home/nonroot belongs to %d, want nonroot", h.Uid)
	}
}

// TestVersion runs the binary of this machine's architecture, as the container would: it
// must say which version and commit it was built from.
func TestVersion(t *testing.T) {
	idx := openImage(t, layoutDir(), "make image")
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range im.Manifests {
		if d.Platform.OS != "linux" || d.Platform.Architecture != runtime.GOARCH {
			continue
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(t.TempDir(), "credgate")
		if err := os.WriteFile(bin, readFS(t, img).read(t, entrypoint), 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "--version").CombinedOutput()
		if err != nil {
			t.Fatalf("credgate --version: %v\n%s", err, out)
		}
		for _, want := range []string{" " + stamp(t, "VERSION") + " ", "commit " + stamp(t, "COMMIT"), runtime.GOOS + "/" + runtime.GOARCH} {
			if !strings.Contains(string(out), want) {
				t.Errorf("credgate --version: %q, want %q in it", out, want)
			}
		}
		return
	}
	t.Fatalf("no linux/%s image to run here", runtime.GOARCH)
}

// TestSBOM checks the SPDX documents ko wrote beside the image: one per platform, each
// describing that very image and the credgate module in it.
func TestSBOM(t *testing.T) {
	idx := openImage(t, layoutDir(), "make image")
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	dir := layoutDir() + ".sbom"
	for _, d := range im.Manifests {
		file := filepath.Join(dir, "credgate-"+strings.ReplaceAll(d.Platform.String(), "/", "-")+".spdx.json")
		data, err := os.ReadFile(file)
		if err != nil {
			t.Errorf("no SBOM for %s: %v (run `make image`)", d.Platform, err)
			continue
		}
		var doc struct {
			Packages []struct {
				Name, VersionInfo string
			}
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		var names []string
		for _, p := range doc.Packages {
			names = append(names, p.Name)
		}
		if !slices.Contains(names, "github.com/credgate/credgate") {
			t.Errorf("%s: no package github.com/credgate/credgate among %q", file, names)
		}
		if !strings.Contains(string(data), d.Digest.Hex) {
			t.Errorf("%s does not name the image it describes, %s", file, d.Digest)
		}
	}
}

// TestReproducible: the base, built twice from the lock, and the image, built twice by
// `make image-test` from one tree, each have one digest.
func TestReproducible(t *testing.T) {
	b1, _ := buildBase(t).Digest()
	b2, _ := buildBase(t).Digest()
	if b1 != b2 {
		t.Errorf("the base built twice: %s, then %s", b1, b2)
	}
	first, _ := openImage(t, layoutDir(), "make image").Digest()
	second, _ := openImage(t, env("IMAGE_REBUILD", "../../bin/image/rebuild"), "make image-test").Digest()
	if first != second {
		t.Errorf("the image built twice from one tree: %s, then %s", first, second)
	}
}

// imageFS is an image's flattened file system, by clean absolute path.
type imageFS map[string]fsEntry

type fsEntry struct {
	hdr  *tar.Header
	data []byte
}

func readFS(t *testing.T, img v1.Image) imageFS {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	fs := imageFS{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return fs
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		fs[path.Clean("/"+hdr.Name)] = fsEntry{hdr, data}
	}
}

// entry returns the entry at p, following symbolic and hard links as the kernel would
// (tzdata's UTC is a link to Etc/UTC).
func (fs imageFS) entry(t *testing.T, p string) fsEntry {
	t.Helper()
	for range 10 {
		e, ok := fs[p]
		if !ok {
			t.Fatalf("the image has no %s", p)
		}
		switch e.hdr.Typeflag {
		case tar.TypeSymlink:
			if target := e.hdr.Linkname; path.IsAbs(target) {
				p = path.Clean(target)
			} else {
				p = path.Join(path.Dir(p), target)
			}
		case tar.TypeLink:
			p = path.Clean("/" + e.hdr.Linkname)
		default:
			return e
		}
	}
	t.Fatalf("%s: too many links", p)
	return fsEntry{}
}

func (fs imageFS) read(t *testing.T, p string) []byte {
	t.Helper()
	e := fs.entry(t, p)
	if e.hdr.Typeflag != tar.TypeReg {
		t.Fatalf("%s is not a file", p)
	}
	return e.data
}
