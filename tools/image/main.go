// Command imagetools writes l7lb's container image as a tarball without a
// container engine: one layer holding the static binary at /l7lb and an
// /etc/passwd and /etc/group naming the non-root user 65532, a config with
// that user, the entrypoint and org.opencontainers.image.* labels. The
// tarball is a docker-archive (manifest.json, config, layer), which
// `docker load`, `podman load` and `crane push` take; its manifest, config
// and layer use the OCI media types.
//
// tools/image/build.sh builds the binary and runs this; see there.
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// nonRoot is the image's user: the same UID as distroless's nonroot and
// the chart's runAsUser.
const nonRoot = 65532

type options struct {
	binary, out, tag      string
	version, revision     string
	source, arch, created string
}

func main() {
	var o options
	flag.StringVar(&o.binary, "binary", "", "the static l7lb binary to put at /l7lb")
	flag.StringVar(&o.out, "out", "", "the image tarball to write")
	flag.StringVar(&o.tag, "tag", "ghcr.io/l7lb/l7lb:latest", "the image name recorded in the tarball (docker load tags it so)")
	flag.StringVar(&o.version, "version", "dev", "org.opencontainers.image.version")
	flag.StringVar(&o.revision, "revision", "", "org.opencontainers.image.revision (the git commit)")
	flag.StringVar(&o.source, "source", "https://github.com/l7lb/l7lb", "org.opencontainers.image.source")
	flag.StringVar(&o.arch, "arch", "amd64", "the binary's GOARCH")
	flag.StringVar(&o.created, "created", "", "creation time, Unix seconds (SOURCE_DATE_EPOCH); the same input gives the same image")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "imagetools:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.binary == "" || o.out == "" {
		return fmt.Errorf("-binary and -out are required")
	}
	created := time.Unix(0, 0).UTC()
	if o.created != "" {
		sec, err := strconv.ParseInt(o.created, 10, 64)
		if err != nil {
			return fmt.Errorf("-created %q: want Unix seconds: %w", o.created, err)
		}
		created = time.Unix(sec, 0).UTC()
	}
	bin, err := os.ReadFile(o.binary)
	if err != nil {
		return fmt.Errorf("reading the binary: %w", err)
	}
	layerTar, err := rootFS(bin, created)
	if err != nil {
		return err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return fmt.Errorf("layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{
		Layer:     layer,
		History:   v1.History{Created: v1.Time{Time: created}, CreatedBy: "tools/image/build.sh", Comment: "l7lb " + o.version},
		MediaType: types.OCILayer,
	})
	if err != nil {
		return fmt.Errorf("appending the layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", o.arch
	cf.Created = v1.Time{Time: created}
	labels := map[string]string{
		"org.opencontainers.image.title":       "l7lb",
		"org.opencontainers.image.description": "A Layer-7 load balancer for Milvus",
		"org.opencontainers.image.version":     o.version,
		"org.opencontainers.image.source":      o.source,
		"org.opencontainers.image.url":         o.source,
		"org.opencontainers.image.created":     created.Format(time.RFC3339),
	}
	if o.revision != "" {
		labels["org.opencontainers.image.revision"] = o.revision
	}
	cf.Config = v1.Config{
		User:       strconv.Itoa(nonRoot) + ":" + strconv.Itoa(nonRoot),
		Entrypoint: []string{"/l7lb"},
		WorkingDir: "/",
		Labels:     labels,
		// The chart's listener and health ports (--listen=443=:8443,
		// --health-address=:10254); informational only.
		ExposedPorts: map[string]struct{}{"8443/tcp": {}, "10254/tcp": {}},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	ref, err := name.NewTag(o.tag)
	if err != nil {
		return fmt.Errorf("-tag %q: %w", o.tag, err)
	}
	if err := tarball.WriteToFile(o.out, ref, img); err != nil {
		return fmt.Errorf("writing %s: %w", o.out, err)
	}
	return nil
}

// rootFS is the layer: /l7lb owned by root (the user cannot rewrite its
// own binary), /etc/passwd and /etc/group with root and nonroot, and an
// empty /tmp. Every entry has the same time, so the layer's digest
// depends only on the binary.
func rootFS(bin []byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	n := strconv.Itoa(nonRoot)
	files := []struct {
		name string
		mode int64
		uid  int
		data []byte
		dir  bool
	}{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:" + n + ":" + n + ":nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:" + n + ":\n")},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, uid: nonRoot, dir: true},
		{name: "tmp/", mode: 0o1777, dir: true},
		{name: "l7lb", mode: 0o755, data: bin},
	}
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.uid, ModTime: mtime, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag, h.Size = tar.TypeReg, int64(len(f.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("layer entry %s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
