// Package base assembles credgate's container base image from pinned Debian packages
// (ca-certificates, tzdata), a non-root user and /tmp, without Docker, dpkg or a base image
// to pull: the machines that build it reach Debian's archive and the Go module proxy only.
package base

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strings"
)

// Lock pins the Debian packages the base is assembled from, by version and sha256, so the
// same lock always gives the same base image digest.
type Lock struct {
	// Suite is the Debian release the packages are pinned from; `imagebase pin` looks in
	// Suite, Suite-updates and Suite-security for the newest versions.
	Suite string
	// Snapshot is when the lock was written, as snapshot.debian.org names its archive
	// states: once Debian drops a pinned version from its pool, the snapshot of that
	// moment still has it.
	Snapshot string
	Packages []Package
}

// Package is one pinned .deb.
type Package struct {
	Name, Version, SHA256 string
	// Archive is "debian" or "debian-security": the tree of the mirror Filename is in.
	Archive  string
	Filename string // e.g. pool/main/t/tzdata/tzdata_2026b-0+deb12u1_all.deb
}

const lockHeader = `# The Debian packages of credgate's image base (test/image/cmd/imagebase).
# Written by 'make image-pin'; review the diff and commit it.
#   package <name> <version> <sha256> <archive> <filename>
`

// ReadLock parses a lock file.
func ReadLock(path string) (*Lock, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	l := &Lock{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 0 || strings.HasPrefix(f[0], "#"):
		case f[0] == "suite" && len(f) == 2:
			l.Suite = f[1]
		case f[0] == "snapshot" && len(f) == 2:
			l.Snapshot = f[1]
		case f[0] == "package" && len(f) == 6:
			l.Packages = append(l.Packages, Package{Name: f[1], Version: f[2], SHA256: f[3], Archive: f[4], Filename: f[5]})
		default:
			return nil, fmt.Errorf("%s:%d: cannot parse %q", path, n, sc.Text())
		}
	}
	if l.Suite == "" || len(l.Packages) == 0 {
		return nil, fmt.Errorf("%s: no suite or no packages", path)
	}
	return l, nil
}

// Write writes the lock to path.
func (l *Lock) Write(path string) error {
	var b strings.Builder
	b.WriteString(lockHeader)
	fmt.Fprintf(&b, "suite %s\nsnapshot %s\n", l.Suite, l.Snapshot)
	for _, p := range l.Packages {
		fmt.Fprintf(&b, "package %s %s %s %s %s\n", p.Name, p.Version, p.SHA256, p.Archive, p.Filename)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// Package returns the pinned package called name.
func (l *Lock) Package(name string) (Package, error) {
	for _, p := range l.Packages {
		if p.Name == name {
			return p, nil
		}
	}
	return Package{}, fmt.Errorf("the lock pins no package %q", name)
}
