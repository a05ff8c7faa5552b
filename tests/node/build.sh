#!/usr/bin/env bash
# Builds what a real test node needs, into a cache folder keyed by this folder's go.mod, go.sum
# and pause.c, so a rebuild happens only when one changes:
#   kubelet, kube-controller-manager, kube-scheduler  from the k8s.io/kubernetes module pinned in go.mod
#   pause.tar                                         a sandbox ("pause") image: pause.c, static, in a
#                                                     scratch image saved by podman, for `ctr images import`
# and installs containerd, runc and the CNI plugins with apt-get when one is missing (as root).
# Prints the folder as its last line.
#
# Exit status 77 (with "SKIP: <what refused>" on stderr) means this machine cannot have a node:
# not root, or a package, compiler or podman is missing and cannot be installed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
key="$(cat "$here/go.mod" "$here/go.sum" "$here/pause.c" | sha256sum | cut -c1-16)"
out="${AIRBYTE_WATCH_CACHE:-$root/.cache}/node/$key"

refuse() {
  echo "SKIP: $*" >&2
  exit 77
}

[[ $(id -u) == 0 ]] || refuse "not root: kubelet and containerd need root"
need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local ]] || need+=(containernetworking-plugins)
command -v podman >/dev/null || need+=(podman)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
if ((${#need[@]})); then
  echo "installing ${need[*]} with apt-get" >&2
  log="$(mktemp)"
  if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}"; } >"$log" 2>&1; then
    refuse "apt-get install ${need[*]} failed: $(grep -E '^(E|W):' "$log" | head -3 | tr '\n' ' ')"
  fi
fi

if [[ -x "$out/kubelet" && -x "$out/kube-controller-manager" && -x "$out/kube-scheduler" && -s "$out/pause.tar" ]]; then
  echo "$out"
  exit 0
fi

rm -rf "$out.tmp" && mkdir -p "$out.tmp"
start=$(date +%s)
cd "$here"
echo "building kubelet, kube-controller-manager and kube-scheduler into $out (first time only)" >&2
export CGO_ENABLED=0
for cmd in kubelet kube-controller-manager kube-scheduler; do
  go build -trimpath -ldflags "-s -w" -o "$out.tmp/$cmd" "k8s.io/kubernetes/cmd/$cmd" >&2
done

# The sandbox image: containerd's default (registry.k8s.io/pause) cannot be pulled here.
gcc -Os -static -o "$out.tmp/pause" "$here/pause.c" >&2 || refuse "gcc -static could not build pause.c"
printf 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n' >"$out.tmp/Containerfile"
podman build -q -t localhost/airbyte-watch-pause:"$key" "$out.tmp" >&2 || refuse "podman build of the pause image failed"
podman save --format docker-archive -o "$out.tmp/pause.tar" localhost/airbyte-watch-pause:"$key" >&2
rm -f "$out.tmp/Containerfile"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "built in $(( $(date +%s) - start )) s" >&2
echo "$out"
