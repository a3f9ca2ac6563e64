// Module imagetools writes l7lb's OCI image without a container engine
// (tools/image/build.sh). It is a separate module so that
// go-containerregistry never enters the product's go.mod.
module github.com/l7lb/l7lb/tools/image

go 1.26.8

require github.com/google/go-containerregistry v0.22.1

require (
	github.com/klauspost/compress v1.19.2 // indirect
	github.com/opencontainers/go-digest v1.0.0 // indirect
	github.com/opencontainers/image-spec v1.1.1 // indirect
)
