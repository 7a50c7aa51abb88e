package base

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/ulikunitz/xz"
)

// fakeDebs serves a small ca-certificates and tzdata under /debian/pool/ and returns a lock
// pinning them: enough to check everything Build does with a package, without the network.
func fakeDebs(t *testing.T) (*httptest.Server, *Lock) {
	t.Helper()
	reg := func(name, body string) tarEntry {
		return tarEntry{&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}, body}
	}
	debs := map[string][]byte{
		"ca-certificates": makeDeb(t, "Package: ca-certificates\nVersion: 1\n", []tarEntry{
			reg("./usr/share/ca-certificates/mozilla/B.crt", "B\n"),
			reg("./usr/share/ca-certificates/mozilla/A.crt", "A"), // no final newline
			reg("./usr/share/doc/ca-certificates/copyright", "MPL"),
			reg("./usr/sbin/update-ca-certificates", "#!/bin/sh"),
		}),
		"tzdata": makeDeb(t, "Package: tzdata\nVersion: 2\n", []tarEntry{
			reg("./usr/share/zoneinfo/Etc/UTC", "TZif"),
			{&tar.Header{Name: "./usr/share/zoneinfo/UTC", Typeflag: tar.TypeSymlink, Linkname: "Etc/UTC"}, ""},
			{&tar.Header{Name: "./usr/share/zoneinfo/Zulu", Typeflag: tar.TypeLink, Linkname: "./usr/share/zoneinfo/Etc/UTC"}, ""},
			reg("./usr/share/doc/tzdata/copyright", "PD"),
		}),
	}
	l := &Lock{Suite: "bookworm", Snapshot: "20260101T000000Z"}
	mux := http.NewServeMux()
	for _, name := range []string{"ca-certificates", "tzdata"} {
		sum := sha256.Sum256(debs[name])
		p := Package{Name: name, Version: "1", SHA256: hex.EncodeToString(sum[:]), Archive: "debian",
			Filename: "pool/main/" + name + "_1_all.deb"}
		l.Packages = append(l.Packages, p)
		data := debs[name]
		mux.HandleFunc("/debian/"+p.Filename, func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(data) })
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, l
}

func TestBuild(t *testing.T) {
	srv, l := fakeDebs(t)
	plats := []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}}
	build := func() v1.ImageIndex {
		idx, err := Build(context.Background(), l, &Fetcher{Mirror: srv.URL, CacheDir: t.TempDir()}, plats)
		if err != nil {
			t.Fatal(err)
		}
		return idx
	}
	idx := build()
	d1, _ := idx.Digest()
	d2, _ := build().Digest()
	if d1 != d2 {
		t.Errorf("two builds of one lock: digests %s and %s", d1, d2)
	}

	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 2 || im.Manifests[1].Platform.Architecture != "arm64" {
		t.Fatalf("manifests: %+v", im.Manifests)
	}
	img, err := idx.Image(im.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" || cfg.Architecture != "amd64" || !cfg.Created.Equal(epoch) {
		t.Errorf("config: user %q, architecture %q, created %v", cfg.Config.User, cfg.Architecture, cfg.Created)
	}

	var names []string
	files := map[string]*tar.Header{}
	bodies := map[string]string{}
	tr := tar.NewReader(mutate.Extract(img))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		name := strings.TrimSuffix(hdr.Name, "/")
		names = append(names, name)
		files[name], bodies[name] = hdr, string(body)
		if !hdr.ModTime.Equal(epoch) || (hdr.Uid != 0 && name != "home/nonroot") {
			t.Errorf("%s: mtime %v, uid %d", hdr.Name, hdr.ModTime, hdr.Uid)
		}
	}
	if !sort.StringsAreSorted(names) {
		t.Errorf("entries not sorted: %q", names)
	}
	for name, want := range map[string]string{
		"etc/ssl/certs/ca-certificates.crt": "A\nB\n", // sorted, each ending with a newline
		"usr/share/zoneinfo/Zulu":           "TZif",   // a hard link becomes a copy
		"var/lib/dpkg/status.d/tzdata":      "Package: tzdata\nVersion: 2\nStatus: install ok installed\n",
		"usr/share/doc/tzdata/copyright":    "PD",
	} {
		if bodies[name] != want || files[name].Typeflag != tar.TypeReg {
			t.Errorf("%s: %q, want a file of %q", name, bodies[name], want)
		}
	}
	if h := files["usr/share/zoneinfo/UTC"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "Etc/UTC" {
		t.Errorf("UTC: %+v, want a symlink to Etc/UTC", h)
	}
	if h := files["tmp"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("tmp: %+v, want mode 1777", h)
	}
	if h := files["home/nonroot"]; h == nil || h.Uid != NonRoot || h.Gid != NonRoot {
		t.Errorf("home/nonroot: %+v, want it owned by nonroot", h)
	}
	if !strings.Contains(bodies["etc/passwd"], "nonroot:x:65532:65532:nonroot:/home/nonroot:") {
		t.Errorf("passwd: %q", bodies["etc/passwd"])
	}
	if _, ok := files["usr/sbin/update-ca-certificates"]; ok {
		t.Error("the base has update-ca-certificates, which only the bundle needed")
	}
}

func TestFetchFallsBackThenCaches(t *testing.T) {
	good, l := fakeDebs(t)
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	cache := t.TempDir()
	// The mirror no longer has it (superseded); the snapshot does.
	f := &Fetcher{Mirror: notFound.URL, SnapshotURL: good.URL + "/snap", ArchiveURL: notFound.URL, CacheDir: cache}
	p := l.Packages[1]
	good.Config.Handler.(*http.ServeMux).HandleFunc("/snap/archive/debian/"+l.Snapshot+"/"+p.Filename,
		func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/debian/"+p.Filename, http.StatusFound)
		})
	if _, err := f.Fetch(context.Background(), l, p); err != nil {
		t.Fatal(err)
	}
	good.Close()
	if _, err := f.Fetch(context.Background(), l, p); err != nil {
		t.Fatalf("from the cache: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cache, "tzdata_1_all.deb")); err != nil {
		t.Error(err)
	}
}

func TestFetchSaysWhatToDo(t *testing.T) {
	_, l := fakeDebs(t)
	wrong := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "other") }))
	defer wrong.Close()
	notFound := httptest.NewServer(http.NotFoundHandler())
	defer notFound.Close()
	f := &Fetcher{Mirror: notFound.URL, SnapshotURL: wrong.URL, ArchiveURL: notFound.URL}
	_, err := f.Fetch(context.Background(), l, l.Packages[1])
	if err == nil {
		t.Fatal("fetched a package no server has")
	}
	for _, want := range []string{
		"tzdata 1 (sha256 " + l.Packages[1].SHA256 + ") could not be fetched",
		notFound.URL + "/debian/pool/main/tzdata_1_all.deb: 404 Not Found",
		wrong.URL + "/archive/debian/20260101T000000Z/pool/main/tzdata_1_all.deb: sha256 ",
		"Run 'make image-pin'",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
}

func TestLockRoundTrip(t *testing.T) {
	_, l := fakeDebs(t)
	p := filepath.Join(t.TempDir(), "base.lock")
	if err := l.Write(p); err != nil {
		t.Fatal(err)
	}
	got, err := ReadLock(p)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(l) {
		t.Errorf("read back %+v, wrote %+v", got, l)
	}
}

func TestNewerComparesAsDebian(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want bool
	}{
		{"2026f-0+deb12u1", "2026b-0+deb12u1", true},
		{"20250419~deb12u2", "20230311+deb12u1", true},
		{"1.0~rc1", "1.0", false}, // ~ sorts before anything, as apt has it
	} {
		if got := newer(c.a, c.b); got != c.want {
			t.Errorf("newer(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

type tarEntry struct {
	hdr  *tar.Header
	body string
}

// makeDeb builds a .deb as dpkg-deb does: an ar archive of debian-binary and xz tars.
func makeDeb(t *testing.T, control string, files []tarEntry) []byte {
	t.Helper()
	tarXZ := func(entries []tarEntry) []byte {
		var b bytes.Buffer
		zw, err := xz.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		tw := tar.NewWriter(zw)
		for _, e := range entries {
			e.hdr.Size = int64(len(e.body))
			if err := tw.WriteHeader(e.hdr); err != nil {
				t.Fatal(err)
			}
			if _, err := io.WriteString(tw, e.body); err != nil {
				t.Fatal(err)
			}
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	ctl := tarXZ([]tarEntry{{&tar.Header{Name: "./control", Typeflag: tar.TypeReg, Mode: 0o644}, control}})
	var ar bytes.Buffer
	ar.WriteString("!<arch>\n")
	for _, m := range []struct {
		name string
		data []byte
	}{{"debian-binary", []byte("2.0\n")}, {"control.tar.xz", ctl}, {"data.tar.xz", tarXZ(files)}} {
		fmt.Fprintf(&ar, "%-16s%-12d%-6d%-6d%-8s%-10d`\n", m.name, 0, 0, 0, "100644", len(m.data))
		ar.Write(m.data)
		if len(m.data)%2 == 1 {
			ar.WriteByte('\n')
		}
	}
	return ar.Bytes()
}
