package base

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// DefaultMirror is where packages are fetched first. HTTPS, although the sha256 of the lock
// is what makes a download trusted: it also protects `imagebase pin`, which has no other
// check on the Packages index it reads.
const DefaultMirror = "https://deb.debian.org"

// Fetcher downloads pinned packages, verifying their sha256, into a cache directory.
type Fetcher struct {
	Mirror   string // DefaultMirror if empty
	CacheDir string // where verified .debs are kept between builds; none if empty
	Client   *http.Client

	// Where superseded versions are looked for; the tests point them elsewhere.
	SnapshotURL string // "https://snapshot.debian.org" if empty
	ArchiveURL  string // "https://archive.debian.org" if empty
}

// URLs lists where p is tried, in order. Debian's pool keeps only the versions a suite
// still lists, so a pinned version leaves the mirrors soon after Debian supersedes it
// (tzdata several times a year, ca-certificates with security updates);
// snapshot.debian.org keeps every version that was ever in the archive, and
// archive.debian.org a release's last versions after its end of life.
func (f *Fetcher) URLs(l *Lock, p Package) []string {
	urls := []string{urlBase(f.Mirror, DefaultMirror) + "/" + p.Archive + "/" + p.Filename}
	if l.Snapshot != "" {
		urls = append(urls, urlBase(f.SnapshotURL, "https://snapshot.debian.org")+"/archive/"+p.Archive+"/"+l.Snapshot+"/"+p.Filename)
	}
	return append(urls, urlBase(f.ArchiveURL, "https://archive.debian.org")+"/"+p.Archive+"/"+p.Filename)
}

// urlBase returns s, else def, without a trailing slash.
func urlBase(s, def string) string {
	if s == "" {
		s = def
	}
	return strings.TrimSuffix(s, "/")
}

// Fetch returns the .deb p pins, from the cache or else from the first URL that serves a
// file with the pinned sha256.
func (f *Fetcher) Fetch(ctx context.Context, l *Lock, p Package) ([]byte, error) {
	cached := filepath.Join(f.CacheDir, path.Base(p.Filename))
	if f.CacheDir != "" {
		if data, err := os.ReadFile(cached); err == nil && sumOK(data, p.SHA256) {
			return data, nil
		}
	}
	var failures []string
	for _, u := range f.URLs(l, p) {
		data, err := f.get(ctx, u)
		if err == nil && !sumOK(data, p.SHA256) {
			err = fmt.Errorf("sha256 %x, not the pinned one", sha256.Sum256(data))
		}
		if err != nil {
			failures = append(failures, fmt.Sprintf("  %s: %v", u, err))
			continue
		}
		if f.CacheDir != "" {
			if err := writeAtomic(cached, data); err != nil {
				return nil, err
			}
		}
		return data, nil
	}
	return nil, fmt.Errorf("%s %s (sha256 %s) could not be fetched:\n%s\n"+
		"Debian has probably superseded this version and dropped it from its pool. Run 'make image-pin'\n"+
		"to pin the current versions, then review and commit test/image/base.lock; or set DEBIAN_MIRROR\n"+
		"to a mirror that still has this version",
		p.Name, p.Version, p.SHA256, strings.Join(failures, "\n"))
}

func (f *Fetcher) get(ctx context.Context, u string) ([]byte, error) {
	client := f.Client
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Minute}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if ue := new(url.Error); errors.As(err, &ue) {
		err = ue.Err // the caller's message has the URL already
	}
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s", resp.Status)
	}
	return io.ReadAll(resp.Body)
}

func sumOK(data []byte, want string) bool {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]) == want
}

// writeAtomic writes data to path through a temporary file, so that an interrupted build
// leaves no partial file behind.
func writeAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil { // CreateTemp's 0600 is for secrets
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
