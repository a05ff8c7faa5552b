#!/usr/bin/env bash
# Builds the helm command from the Go module pinned in this folder's go.mod, into a cache
# folder keyed by go.mod + go.sum + this script, so a rebuild happens only when a pin changes.
# Prints the binary's path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
key="$(cat "$here/go.mod" "$here/go.sum" "$here/build.sh" | sha256sum | cut -c1-16)"
out="${AIRBYTE_WATCH_CACHE:-$root/.cache}/helm/$key"
if [[ ! -x "$out/helm" ]]; then
  echo "building helm into $out (first time only; takes a few minutes)" >&2
  mkdir -p "$out"
  start=$(date +%s)
  cd "$here"
  # Stamp the version and the Kubernetes version helm assumes offline (helm template, lint)
  # as Helm's own Makefile does; without them it reports "v3.22" and assumes Kubernetes 1.20.
  helm_version="$(go list -f '{{.Version}}' -m helm.sh/helm/v3)"
  IFS=. read -r k8s_major k8s_minor _ <<<"$(go list -f '{{.Version}}' -m k8s.io/client-go | tr -d v)"
  ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    ldflags+=" -X $pkg.k8sVersionMajor=$((k8s_major + 1)) -X $pkg.k8sVersionMinor=$k8s_minor"
  done
  CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$out/helm.tmp" helm.sh/helm/v3/cmd/helm >&2
  mv "$out/helm.tmp" "$out/helm"
  echo "built in $(( $(date +%s) - start )) s" >&2
fi
echo "$out/helm"
