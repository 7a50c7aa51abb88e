// Module image assembles credgate's image base from pinned Debian packages and tests the
// image `make image` builds. It is separate from credgate's module so that credgate's
// go.mod does not gain go-containerregistry and the .deb and xz readers.
module github.com/credgate/credgate/test/image

go 1.26.0

require (
	github.com/google/go-containerregistry v0.22.1
	github.com/knqyf263/go-deb-version v0.0.0-20241115132648-6f4aee6ccd23
	github.com/ulikunitz/xz v0.5.17
)

require (
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
	golang.org/x/sync v0.22.0 // indirect
)
