package base

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Repo names the base in ko's KO_DEFAULTBASEIMAGE, and so in the annotation
// org.opencontainers.image.base.name of every image built on it. The .invalid domain can
// never resolve (RFC 2606): ko reads the base from its cache by digest, and if it ever did
// not, the build would fail at once instead of pulling something else.
const Repo = "credgate.invalid/base"

// NonRoot is the user the image runs as: distroless's nonroot, so that manifests written
// for either base (runAsUser: 65532) work with both.
const NonRoot = 65532

// BundlePath is where Go's crypto/x509, and most TLS stacks on Linux, look for the CA bundle.
const BundlePath = "/etc/ssl/certs/ca-certificates.crt"

// epoch is every timestamp of the base: nothing in it depends on when it was built, so the
// same lock gives the same digest on any machine, on any day.
var epoch = time.Unix(0, 0).UTC()

// Build assembles the base: one layer, shared by an image per platform (the packages are
// architecture-independent), in an OCI index.
func Build(ctx context.Context, l *Lock, f *Fetcher, platforms []v1.Platform) (v1.ImageIndex, error) {
	fs := fsTree{}
	if err := fs.addPackages(ctx, l, f); err != nil {
		return nil, err
	}
	fs.addUsers(l.Suite)
	layerTar, err := fs.tar()
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}

	var pins []string
	for _, p := range l.Packages {
		pins = append(pins, p.Name+" "+p.Version)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range platforms {
		img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{
			Layer:   layer,
			History: v1.History{Created: v1.Time{Time: epoch}, CreatedBy: "credgate imagebase: " + strings.Join(pins, ", ")},
		})
		if err != nil {
			return nil, err
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return nil, err
		}
		cfg = cfg.DeepCopy()
		cfg.OS, cfg.Architecture, cfg.Variant = p.OS, p.Architecture, p.Variant
		cfg.Created = v1.Time{Time: epoch}
		cfg.Config.User = fmt.Sprintf("%d:%d", NonRoot, NonRoot)
		cfg.Config.WorkingDir = "/home/nonroot"
		cfg.Config.Env = []string{
			"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"SSL_CERT_FILE=" + BundlePath,
		}
		if img, err = mutate.ConfigFile(img, cfg); err != nil {
			return nil, err
		}
		img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{
			Add:        img,
			Descriptor: v1.Descriptor{Platform: &p},
		})
	}
	return idx, nil
}

// fsNode is one entry of the layer.
type fsNode struct {
	typ      byte // tar.TypeDir, tar.TypeReg or tar.TypeSymlink
	mode     int64
	uid, gid int
	data     []byte
	link     string
}

// fsTree is the base's file system by clean absolute path.
type fsTree map[string]fsNode

func (t fsTree) mkdirAll(dir string, mode int64, uid, gid int) {
	for ; dir != "/"; dir = path.Dir(dir) {
		if _, ok := t[dir]; !ok {
			t[dir] = fsNode{typ: tar.TypeDir, mode: mode, uid: uid, gid: gid}
		}
		mode, uid, gid = 0o755, 0, 0 // only the innermost directory gets the caller's
	}
}

func (t fsTree) file(name string, mode int64, data []byte) {
	t.mkdirAll(path.Dir(name), 0o755, 0, 0)
	t[name] = fsNode{typ: tar.TypeReg, mode: mode, data: data}
}

// addPackages adds what the base needs of each pinned package: tzdata's zone files, a CA
// bundle from ca-certificates, their copyright files, and a dpkg status entry per package,
// which is how scanners (Trivy, Grype) find the packages of distroless-style images.
func (t fsTree) addPackages(ctx context.Context, l *Lock, f *Fetcher) error {
	for _, name := range []string{"ca-certificates", "tzdata"} {
		p, err := l.Package(name)
		if err != nil {
			return err
		}
		data, err := f.Fetch(ctx, l, p)
		if err != nil {
			return err
		}
		d, err := readDeb(data)
		if err != nil {
			return fmt.Errorf("%s: %w", path.Base(p.Filename), err)
		}
		copyright := "/usr/share/doc/" + name + "/copyright"
		if err := t.copyFrom(d, copyright, copyright); err != nil {
			return err
		}
		status := append(bytes.TrimRight(d.control, "\n"), "\nStatus: install ok installed\n"...)
		t.file("/var/lib/dpkg/status.d/"+name, 0o644, status)

		switch name {
		case "ca-certificates":
			bundle, err := caBundle(d)
			if err != nil {
				return err
			}
			t.file(BundlePath, 0o644, bundle)
		case "tzdata":
			for p := range d.files {
				if strings.HasPrefix(p, "/usr/share/zoneinfo/") {
					if err := t.copyFrom(d, p, p); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// copyFrom copies the entry src of a package to dst, a hard link as a copy of its target
// (sorted entries cannot guarantee a link comes after the file it names).
func (t fsTree) copyFrom(d *deb, src, dst string) error {
	f, ok := d.files[src]
	if !ok {
		return fmt.Errorf("the package has no %s", src)
	}
	switch f.hdr.Typeflag {
	case tar.TypeDir:
		t.mkdirAll(dst, 0o755, 0, 0)
	case tar.TypeReg:
		t.file(dst, f.hdr.Mode&0o777, f.data)
	case tar.TypeSymlink:
		t.mkdirAll(path.Dir(dst), 0o755, 0, 0)
		t[dst] = fsNode{typ: tar.TypeSymlink, mode: 0o777, link: f.hdr.Linkname}
	case tar.TypeLink:
		return t.copyFrom(d, path.Clean("/"+f.hdr.Linkname), dst)
	default:
		return fmt.Errorf("%s: unsupported tar entry type %q", src, f.hdr.Typeflag)
	}
	return nil
}

// caBundle builds /etc/ssl/certs/ca-certificates.crt as update-ca-certificates does when
// the package is installed with its defaults: every certificate under mozilla/, in the sorted
// order of /etc/ca-certificates.conf, each ending with a newline. On a Debian 12 machine with
// no local certificates this gives the installed bundle byte for byte.
func caBundle(d *deb) ([]byte, error) {
	var names []string
	for p, f := range d.files {
		if strings.HasPrefix(p, "/usr/share/ca-certificates/mozilla/") && strings.HasSuffix(p, ".crt") && f.hdr.Typeflag == tar.TypeReg {
			names = append(names, p)
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("ca-certificates ships no certificate under /usr/share/ca-certificates/mozilla")
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, n := range names {
		b.Write(d.files[n].data)
		if !bytes.HasSuffix(d.files[n].data, []byte("\n")) {
			b.WriteByte('\n')
		}
	}
	return b.Bytes(), nil
}

// addUsers adds what a distroless nonroot base has besides packages: root and nonroot
// users, their homes, /tmp, and the files Go reads to resolve names and identify the OS.
func (t fsTree) addUsers(suite string) {
	t.file("/etc/passwd", 0o644, []byte(fmt.Sprintf(
		"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", NonRoot, NonRoot)))
	t.file("/etc/group", 0o644, []byte(fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", NonRoot)))
	// Without it Go's resolver asks DNS before /etc/hosts, where the kubelet writes a pod's
	// hostAliases; with it, names resolve as on any Debian machine.
	t.file("/etc/nsswitch.conf", 0o644, []byte("hosts: files dns\n"))
	// Scanners match the dpkg entries above against Debian's advisories for this release.
	t.file("/etc/os-release", 0o644, []byte(fmt.Sprintf(
		"PRETTY_NAME=\"credgate base (Debian %s packages)\"\nNAME=\"credgate base\"\nID=debian\nVERSION_CODENAME=%s\n", suite, suite)))
	t.mkdirAll("/root", 0o700, 0, 0)
	t.mkdirAll("/home/nonroot", 0o700, NonRoot, NonRoot)
	t.mkdirAll("/tmp", 0o1777, 0, 0)
}

// tar writes the tree as a tar sorted by path, every timestamp the epoch and every owner
// root but for nonroot's home: the same tree always gives the same bytes.
func (t fsTree) tar() ([]byte, error) {
	names := make([]string, 0, len(t))
	for n := range t {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, n := range names {
		node := t[n]
		hdr := &tar.Header{
			Name: strings.TrimPrefix(n, "/"), Typeflag: node.typ, Mode: node.mode,
			Uid: node.uid, Gid: node.gid, ModTime: epoch, Linkname: node.link,
			Size: int64(len(node.data)),
		}
		if node.typ == tar.TypeDir {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(node.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
