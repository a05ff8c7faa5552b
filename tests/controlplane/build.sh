#!/usr/bin/env bash
# Builds kube-apiserver and etcd from the Go modules pinned in this folder's go.mod,
# into a cache folder keyed by go.mod + go.sum, so a rebuild happens only when a pin changes.
# Prints the folder holding both binaries (envtest's KUBEBUILDER_ASSETS layout).
# If KUBEBUILDER_ASSETS already names a folder with both binaries, that folder is used instead.
set -euo pipefail

if [[ -n "${KUBEBUILDER_ASSETS:-}" && -x "$KUBEBUILDER_ASSETS/kube-apiserver" && -x "$KUBEBUILDER_ASSETS/etcd" ]]; then
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
key="$(cat "$here/go.mod" "$here/go.sum" | sha256sum | cut -c1-16)"
out="${AIRBYTE_WATCH_CACHE:-$root/.cache}/controlplane/$key"

if [[ -x "$out/kube-apiserver" && -x "$out/etcd" ]]; then
  echo "$out"
  exit 0
fi

mkdir -p "$out.tmp"
start=$(date +%s)
cd "$here"
echo "building etcd and kube-apiserver into $out (first time only; takes several minutes)" >&2
# -trimpath and no DWARF keep the binaries small; CGO is not needed by either.
export CGO_ENABLED=0
go build -trimpath -ldflags "-s -w" -o "$out.tmp/etcd" go.etcd.io/etcd/server/v3 >&2
go build -trimpath -ldflags "-s -w" -o "$out.tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver >&2
rm -rf "$out" && mv "$out.tmp" "$out"
echo "built in $(( $(date +%s) - start )) s" >&2
echo "$out"
