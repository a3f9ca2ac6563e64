#!/usr/bin/env bash
# Installs what test/kube runs against: etcd from Debian (etcd-server 3.4.x)
# and kube-apiserver + kubectl v1.37.2 built from the Go module proxy with the
# separate module in this folder (k8s.io/kubernetes stays out of the product's
# go.mod). Built binaries are cached in $L7LB_KUBE_BIN (default
# ~/.cache/l7lb) and reused, so only the first run pays for the build
# (kube-apiserver: 9.4 minutes of wall time measured on a busy 2-core machine,
# 9 CPU-minutes; kubectl then 1.6 minutes more). Prints the directory holding the binaries.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version=v1.37.2
bin="${L7LB_KUBE_BIN:-$HOME/.cache/l7lb}"
mkdir -p "$bin"

if ! command -v etcd >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then sudo=; else sudo=sudo; fi
  $sudo apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q etcd-server >&2
fi
# Debian starts an etcd service on install; the tests run their own on
# random ports, so the packaged one is harmless, but it is not needed.
etcd --version >&2

build() { # build <command> <version check...>: go build k8s.io/kubernetes/cmd/<command> into the cache
  local out="$bin/$1-$version"
  if [ -x "$out" ] && "$out" "${@:2}" >/dev/null 2>&1; then
    echo "$1: cached $out" >&2
    return
  fi
  echo "$1: building $out (first run only)" >&2
  local start=$SECONDS
  (cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' \
    -o "$out.tmp" "k8s.io/kubernetes/cmd/$1")
  mv "$out.tmp" "$out"
  echo "$1: built in $((SECONDS - start)) s" >&2
}
build kube-apiserver --version
build kubectl version --client
echo "$bin"
