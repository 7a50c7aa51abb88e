package base

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/ulikunitz/xz"
)

// debFile is one entry of a package's data archive.
type debFile struct {
	hdr  *tar.Header
	data []byte
}

// deb is an unpacked .deb: its control file and the files it installs, by clean absolute path.
type deb struct {
	control []byte
	files   map[string]debFile
}

// readDeb unpacks a .deb, an ar archive of debian-binary, control.tar.xz and data.tar.xz,
// here rather than with dpkg, which the machines that build the image need not have.
func readDeb(data []byte) (*deb, error) {
	members, err := readAr(data)
	if err != nil {
		return nil, err
	}
	d := &deb{files: map[string]debFile{}}
	ctl, err := readTarXZ(members, "control.tar.xz")
	if err != nil {
		return nil, err
	}
	cf, ok := ctl["/control"]
	if !ok {
		return nil, errors.New("control.tar.xz has no control file")
	}
	d.control = cf.data
	if d.files, err = readTarXZ(members, "data.tar.xz"); err != nil {
		return nil, err
	}
	return d, nil
}

// readAr returns the members of an ar archive by name: after the magic, each member is a
// 60-byte header (name, mtime, uid, gid, mode, size) and its data, padded to an even size.
func readAr(data []byte) (map[string][]byte, error) {
	const magic = "!<arch>\n"
	if !bytes.HasPrefix(data, []byte(magic)) {
		return nil, errors.New("not a .deb: no ar magic")
	}
	members := map[string][]byte{}
	for rest := data[len(magic):]; len(rest) > 0; {
		if len(rest) < 60 {
			return nil, errors.New("truncated ar header")
		}
		name := strings.TrimSuffix(strings.TrimSpace(string(rest[:16])), "/")
		size, err := strconv.ParseInt(strings.TrimSpace(string(rest[48:58])), 10, 64)
		if err != nil || size < 0 || size > int64(len(rest)-60) {
			return nil, fmt.Errorf("bad ar member size for %q", name)
		}
		members[name] = rest[60 : 60+size]
		rest = rest[60+size:]
		if size%2 == 1 && len(rest) > 0 {
			rest = rest[1:]
		}
	}
	return members, nil
}

// readTarXZ reads the xz-compressed tar member name (Debian 12 builds every package with
// xz; another compression is an error rather than a guess).
func readTarXZ(members map[string][]byte, name string) (map[string]debFile, error) {
	data, ok := members[name]
	if !ok {
		return nil, fmt.Errorf("no %s in the .deb", name)
	}
	zr, err := xz.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	files := map[string]debFile{}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", name, hdr.Name, err)
		}
		files[path.Clean("/"+hdr.Name)] = debFile{hdr: hdr, data: body}
	}
}
