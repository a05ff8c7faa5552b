#!/usr/bin/env bash
# Builds the `promql` command into a cache folder keyed by go.mod + go.sum + main.go, once.
# Prints the binary's path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
key="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" | sha256sum | cut -c1-16)"
out="${AIRBYTE_WATCH_CACHE:-$root/.cache}/promql/$key"
if [[ ! -x "$out/promql" ]]; then
  echo "building the PromQL parser command (Prometheus's own parser); first time only" >&2
  mkdir -p "$out"
  (cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/promql.tmp" . >&2)
  mv "$out/promql.tmp" "$out/promql"
fi
echo "$out/promql"
