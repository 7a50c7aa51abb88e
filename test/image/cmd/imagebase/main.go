// Command imagebase assembles credgate's image base from the Debian packages pinned in a
// lock file, into an OCI layout that ko reads as its base image (see .ko.yaml), and
// re-pins the lock when Debian publishes new versions.
//
//	imagebase build -lock base.lock -debs DIR -o DIR   # prints the base's reference
//	imagebase pin -lock base.lock                     # rewrites the lock
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/credgate/credgate/test/image/base"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "imagebase:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: imagebase build|pin [flags]")
	}
	fs := flag.NewFlagSet("imagebase "+args[0], flag.ContinueOnError)
	lockPath := fs.String("lock", "base.lock", "the lock file")
	mirror := fs.String("mirror", os.Getenv("DEBIAN_MIRROR"), "Debian mirror tried first (default "+base.DefaultMirror+"; env DEBIAN_MIRROR)")
	debs := fs.String("debs", "", "cache directory for the verified .debs")
	out := fs.String("o", "", "build: the OCI layout to write (replaced)")
	platforms := fs.String("platforms", "linux/amd64,linux/arm64", "build: comma-separated platforms")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	f := &base.Fetcher{Mirror: *mirror, CacheDir: *debs}

	switch args[0] {
	case "build":
		if *out == "" {
			return errors.New("build: -o is required")
		}
		var plats []v1.Platform
		for _, s := range strings.Split(*platforms, ",") {
			p, err := v1.ParsePlatform(s)
			if err != nil {
				return err
			}
			plats = append(plats, *p)
		}
		l, err := base.ReadLock(*lockPath)
		if err != nil {
			return err
		}
		idx, err := base.Build(ctx, l, f, plats)
		if err != nil {
			return err
		}
		if err := writeLayout(*out, idx); err != nil {
			return err
		}
		d, err := idx.Digest()
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(stdout, "%s@%s\n", base.Repo, d)
		return err

	case "pin":
		old, err := base.ReadLock(*lockPath)
		if err != nil {
			return err
		}
		var names []string
		for _, p := range old.Packages {
			names = append(names, p.Name)
		}
		l, err := base.Pin(ctx, f, old.Suite, names, time.Now())
		if err != nil {
			return err
		}
		changed := false
		for _, p := range l.Packages {
			was, _ := old.Package(p.Name)
			fmt.Fprintf(stdout, "%s: %s -> %s\n", p.Name, was.Version, p.Version)
			changed = changed || was != p
		}
		if !changed {
			return nil // the lock's snapshot has these versions too: no diff to review
		}
		return l.Write(*lockPath)
	}
	return fmt.Errorf("unknown command %q: build or pin", args[0])
}

// writeLayout replaces dir with an OCI layout holding idx and, beside it in index.json,
// each of its images: ko's image cache ($KOCACHE/img, pkg/commands/cache.go in ko v0.19.1)
// finds a base image, and each platform's image of it, by looking up that very digest
// among index.json's entries.
func writeLayout(dir string, idx v1.ImageIndex) error {
	if _, err := os.Stat(dir); err == nil {
		if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
			return fmt.Errorf("%s exists and is not an OCI layout: not replacing it", dir)
		}
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	if err := p.AppendIndex(idx); err != nil {
		return err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, desc := range im.Manifests {
		if err := p.AppendDescriptor(desc); err != nil {
			return err
		}
	}
	return nil
}
