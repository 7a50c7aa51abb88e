package base

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	debversion "github.com/knqyf263/go-deb-version"
	"github.com/ulikunitz/xz"
)

// Pin returns a lock of the newest version of each package in suite, suite-updates and
// suite-security, as apt would choose among them. It trusts the mirror's HTTPS for the
// Packages indexes (it does not check the archive's OpenPGP signature); what it writes is
// a diff to review, and from then on the sha256 in the lock is what every build checks.
func Pin(ctx context.Context, f *Fetcher, suite string, names []string, now time.Time) (*Lock, error) {
	best := map[string]Package{}
	for _, src := range []struct{ archive, dist string }{
		{"debian", suite}, {"debian", suite + "-updates"}, {"debian-security", suite + "-security"},
	} {
		u := fmt.Sprintf("%s/%s/dists/%s/main/binary-all/Packages.xz", urlBase(f.Mirror, DefaultMirror), src.archive, src.dist)
		data, err := f.get(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		pkgs, err := parsePackages(data, src.archive)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
		for _, p := range pkgs {
			if cur, ok := best[p.Name]; !ok || newer(p.Version, cur.Version) {
				best[p.Name] = p
			}
		}
	}
	l := &Lock{Suite: suite, Snapshot: now.UTC().Format("20060102T150405Z")}
	for _, n := range names {
		p, ok := best[n]
		if !ok {
			return nil, fmt.Errorf("no package %s in %s", n, suite)
		}
		l.Packages = append(l.Packages, p)
	}
	return l, nil
}

func newer(a, b string) bool {
	va, errA := debversion.NewVersion(a)
	vb, errB := debversion.NewVersion(b)
	return errA == nil && (errB != nil || va.GreaterThan(vb))
}

// parsePackages reads the stanzas of an xz-compressed Packages index.
func parsePackages(data []byte, archive string) ([]Package, error) {
	zr, err := xz.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	var pkgs []Package
	p := Package{Archive: archive}
	sc := bufio.NewScanner(zr)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if p.Name != "" {
				pkgs = append(pkgs, p)
			}
			p = Package{Archive: archive}
			continue
		}
		k, v, _ := strings.Cut(line, ": ")
		switch k {
		case "Package":
			p.Name = v
		case "Version":
			p.Version = v
		case "Filename":
			p.Filename = v
		case "SHA256":
			p.SHA256 = v
		}
	}
	if p.Name != "" {
		pkgs = append(pkgs, p)
	}
	return pkgs, sc.Err()
}
