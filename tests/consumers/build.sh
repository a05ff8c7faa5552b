#!/usr/bin/env bash
# Builds the `consumers` command into a cache folder keyed by go.mod + go.sum + main.go, once.
# Prints the binary's path.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
key="$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" | sha256sum | cut -c1-16)"
out="${AIRBYTE_WATCH_CACHE:-$root/.cache}/consumers/$key"
if [[ ! -x "$out/consumers" ]]; then
  echo "building the status consumers (kstatus, Flux CEL, Argo conditions); first time only" >&2
  mkdir -p "$out"
  (cd "$here" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$out/consumers.tmp" . >&2)
  mv "$out/consumers.tmp" "$out/consumers"
fi
echo "$out/consumers"
