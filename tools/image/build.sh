#!/usr/bin/env bash
# Usage: tools/image/build.sh OUT.tar
#
# Writes l7lb's container image to OUT.tar (a docker-archive: `docker load`,
# `podman load`, `crane push OUT.tar REF`) without a container engine: the
# static binary (CGO_ENABLED=0, -ldflags "-s -w -X main.version=...") at
# /l7lb, the non-root user 65532 in /etc/passwd, entrypoint /l7lb, and
# org.opencontainers.image.* labels. The image is put together by
# tools/image/main.go with go-containerregistry, its own module, so the
# product's go.mod stays lean.
#
# Environment: L7LB_VERSION (default: git describe, else dev), GOARCH
# (default: the Go toolchain's), SOURCE_DATE_EPOCH (default: the commit's
# time, so a commit always gives the same image), L7LB_IMAGE_TAG.
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 OUT.tar" >&2
  exit 2
fi
out="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

revision="$(git -C "$root" rev-parse HEAD 2>/dev/null || true)"
version="${L7LB_VERSION:-$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)}"
created="${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || echo 0)}"
arch="${GOARCH:-$(go env GOARCH)}"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# -buildvcs=auto overrides a GOFLAGS=-buildvcs=false, so `l7lb version`
# also prints the commit when built from a git checkout.
(cd "$root" && CGO_ENABLED=0 GOOS=linux GOARCH="$arch" go build -buildvcs=auto -trimpath \
  -ldflags "-s -w -X main.version=$version" -o "$work/l7lb" ./cmd/l7lb)
(cd "$here" && go run . -binary "$work/l7lb" -out "$out" -version "$version" \
  -revision "$revision" -arch "$arch" -created "$created" \
  -tag "${L7LB_IMAGE_TAG:-ghcr.io/l7lb/l7lb:latest}")
echo "$out: l7lb $version ($arch), $(wc -c <"$out") bytes" >&2
