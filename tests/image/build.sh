#!/usr/bin/env bash
# Builds the project's image from the Dockerfile at the root without Docker Hub or a daemon:
#   1. a base: Debian bookworm with python3, made by mmdebstrap from this machine's own apt
#      sources, cached as .cache/image/base-<key>.tar and as the podman image
#      localhost/airbyte-watch-base:<key>, keyed by everything that goes into it, so it is
#      made once per machine (under a minute) and imported from the tarball when only the
#      podman store is new;
#   2. the image: `podman build --build-arg BASE=<that base>` on the host's network, with pip
#      set up as on this machine (see "pip's settings" below).
# Installs mmdebstrap, podman and runc with apt-get when one is missing (as root).
# Prints the image name (IMAGE, default localhost/airbyte-watch:dev) as its last line.
#
# `build.sh --run-flags` prints instead the `podman run` flags that work here, one per line
# (the OCI runtime and ulimits this machine allows), probing with the base.
#
# Exit status 77 (with "SKIP: <what refused>" on stderr) means this machine cannot build or run
# images: a tool could not be installed, mmdebstrap or the container runtime refused. Any
# other failure, e.g. of the Dockerfile's steps, is a plain error.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="${AIRBYTE_WATCH_CACHE:-$root/.cache}/image"
image="${IMAGE:-localhost/airbyte-watch:dev}"

refuse() {
  echo "SKIP: $*" >&2
  exit 77
}

# --- tools -----------------------------------------------------------------------------------
need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
if ((${#need[@]})); then
  [[ $(id -u) == 0 ]] || refuse "not root, so cannot apt-get install ${need[*]}"
  echo "installing ${need[*]} with apt-get" >&2
  start=$(date +%s)
  log="$(mktemp)"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${need[@]}"; } >"$log" 2>&1; then
    tail -5 "$log" >&2
    refuse "apt-get install ${need[*]} failed: $(grep -m1 '^E:' "$log" || tail -1 "$log")"
  fi
  rm -f "$log"
  echo "installed in $(($(date +%s) - start)) s" >&2
fi

# --- the base --------------------------------------------------------------------------------
# The machine's own Debian sources, so the base comes from the mirror apt uses here.
sources=""
for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
  if [[ -s $f ]] && grep -qv '^\s*\(#\|$\)' "$f"; then
    sources="$f"
    break
  fi
done
suite=bookworm
mmdebstrap_args=(
  --variant=essential
  --include=python3,python3-venv,ca-certificates
  # usr-is-merged instead of usrmerge, which would pull in perl (~50 MB).
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
)
key="$(
  {
    echo "$suite ${mmdebstrap_args[*]}"
    [[ -z $sources ]] || cat "$sources"
  } | sha256sum | cut -c1-16
)"
base="localhost/airbyte-watch-base:$key"
tarball="$cache/base-$key.tar"

if ! podman image exists "$base" 2>/dev/null; then
  if [[ ! -s $tarball ]]; then
    mkdir -p "$cache"
    start=$(date +%s)
    echo "making the base with mmdebstrap into $tarball (once per machine; under a minute)" >&2
    log="$cache/base-$key.log"
    if ! mmdebstrap --format=tar "${mmdebstrap_args[@]}" "$suite" "$tarball.tmp" \
      ${sources:+"$sources"} >"$log" 2>&1; then
      tail -5 "$log" >&2
      rm -f "$tarball.tmp"
      refuse "mmdebstrap refused to make the $suite base: $(grep -m1 '^E:' "$log" || tail -1 "$log") (log: $log)"
    fi
    mv "$tarball.tmp" "$tarball"
    echo "base made in $(($(date +%s) - start)) s" >&2
  fi
  podman import --quiet --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$tarball" "$base" >&2 ||
    refuse "podman import of $tarball failed"
fi

# --- what podman may do here -------------------------------------------------------------------
# Podman asks for RLIMIT_NOFILE and RLIMIT_NPROC of 1048576 by default, which a root without
# CAP_SYS_RESOURCE cannot raise to: ask for this process's hard limits, and for NPROC at most
# 32768 (podman's own NPROC, which its containers cannot exceed, is that where this was
# written). crun refuses hybrid cgroup v1/v2 hierarchies; runc takes them.
nofile="$(ulimit -Hn)"
[[ $nofile == unlimited ]] && nofile=1048576
nproc="$(ulimit -Hu)"
[[ $nproc == unlimited || $nproc -gt 32768 ]] && nproc=32768
ulimits=(--ulimit "nofile=$nofile:$nofile" --ulimit "nproc=$nproc:$nproc")
flags=()
refusals=""
for runtime in "" runc crun; do  # "": podman's default
  try=(${runtime:+--runtime "$runtime"} "${ulimits[@]}")
  if out="$(podman run --rm "${try[@]}" --network host "$base" true 2>&1)"; then
    flags=("${try[@]}")
    break
  fi
  refusals+="${refusals:+; }${runtime:-the default runtime}: ${out//$'\n'/ }"
done
((${#flags[@]})) || refuse "podman cannot run a container here: $refusals"

if [[ ${1:-} == --run-flags ]]; then
  printf '%s\n' "${flags[@]}"
  exit 0
fi

# --- pip's settings ---------------------------------------------------------------------------
# The build stage's pip reaches the package index as this machine's does: one pip.conf merged
# from this machine's pip.conf files and PIP_* variables about the index, mounted at
# /etc/pip.conf for the build only, with the local files and folders it names (a CA bundle,
# find-links folders) mounted read-only at the same paths. None of it is in the image.
mkdir -p "$cache"
pip_conf="$(mktemp "$cache/pip.conf.XXXXXX")"
trap 'rm -f "$pip_conf"' EXIT
mounts=(--volume "$pip_conf:/etc/pip.conf:ro")
while read -r path; do
  [[ -z $path ]] || mounts+=(--volume "$path:$path:ro")
done < <(
  python3 - "$pip_conf" <<'PY'
import configparser, os, sys
conf = configparser.ConfigParser(interpolation=None)
home = os.path.expanduser("~")
conf.read(["/etc/xdg/pip/pip.conf", "/etc/pip.conf", f"{home}/.pip/pip.conf",
           f"{home}/.config/pip/pip.conf", os.environ.get("PIP_CONFIG_FILE", "")])
reach = ("index-url", "extra-index-url", "trusted-host", "cert", "client-cert", "find-links",
         "default-timeout", "timeout", "retries", "proxy", "no-index")
for key in reach:
    value = os.environ.get("PIP_" + key.upper().replace("-", "_"))
    if value is not None:
        if not conf.has_section("global"):
            conf.add_section("global")
        conf["global"][key] = value
with open(sys.argv[1], "w") as out:
    conf.write(out)
paths = set()
for section in conf.values():
    for key in ("cert", "client-cert", "find-links"):
        for word in section.get(key, "").split():
            path = word.removeprefix("file://")
            if path.startswith("/") and os.path.exists(path):
                paths.add(path)
print("\n".join(sorted(paths)))
PY
)

start=$(date +%s)
echo "building $image on $base" >&2
podman build "${flags[@]}" --network host --build-arg "BASE=$base" "${mounts[@]}" \
  --file "$root/Dockerfile" --tag "$image" "$root" >&2
echo "image built in $(($(date +%s) - start)) s: $(podman image inspect --format '{{.Size}}' "$image") bytes" >&2
# Each change of the sources leaves the previous image and build stage untagged: drop those a
# day old, so the store does not grow with every build and a rebuild within a day is quick.
podman image prune --force --filter until=24h >/dev/null || true
echo "$image"
