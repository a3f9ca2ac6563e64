#!/usr/bin/env bash
# Installs the helm that CI runs against charts/l7lb (helm lint, helm
# template, and test/chart). helm v4.3.2 is built from the Go module proxy with
# the separate module in this folder, so helm never enters the product's
# go.mod. The binary is cached in $L7LB_HELM_BIN (default ~/.cache/l7lb, the
# same cache as tools/kube) and reused, so only the first run pays for the
# build (measured here: 1204 s on a busy 2-core machine). Prints the path of
# the helm binary.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version=v4.3.2
bin="${L7LB_HELM_BIN:-$HOME/.cache/l7lb}"
mkdir -p "$bin"
out="$bin/helm-$version"

# helm's own Makefile stamps the version this way; without it `helm version`
# would print only "v4.3".
ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=$version"

if [ -x "$out" ] && "$out" version --template '{{.Version}}' 2>/dev/null | grep -qx "$version"; then
  echo "helm: cached $out" >&2
else
  echo "helm: building $out (first run only)" >&2
  start=$SECONDS
  (cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags="$ldflags" \
    -o "$out.tmp" helm.sh/helm/v4/cmd/helm)
  mv "$out.tmp" "$out"
  echo "helm: built in $((SECONDS - start)) s" >&2
fi
"$out" version >&2
echo "$out"
