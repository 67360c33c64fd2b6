#!/usr/bin/env bash
# Build tfs-fleet/serving-standin (tags: latest and the package version): the TF-Serving-compatible
# CPU stand-in (NOT TensorFlow Serving) for hosts that cannot pull tensorflow/serving.
#
#   scripts/build_standin_image.sh [--force] [--help]
#
# No registry is needed: the root filesystem is a Debian 12 minbase made with debootstrap from
# the mirror this machine's apt uses (or TFS_FLEET_DEBIAN_MIRROR), and the Python wheels are
# downloaded here with pip (containers here cannot verify TLS to PyPI) into .cache/standin/wheels.
# Everything lands in one layer (images/standin/Dockerfile).
#
# Cached: the image is rebuilt only when its recipe changes (this script, images/standin/*,
# src/tfs_standin/*, src/tfs_wire/*; label tfs-fleet.recipe) or with --force; the debootstrap'ed base and
# the wheelhouse are kept under .cache/standin/ (git-ignored).
#
# Environment: TFS_FLEET_STANDIN_IMAGE (default tfs-fleet/serving-standin),
#   TFS_FLEET_DEBIAN_MIRROR, PIP (default: the venv's python -m pip, else python3 -m pip).
# Exit codes: 0 built or up to date, 1 build failed, 2 bad usage or missing prerequisite.
set -euo pipefail

usage() { sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; }
FORCE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "build_standin_image: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
IMAGE=${TFS_FLEET_STANDIN_IMAGE:-tfs-fleet/serving-standin}
VERSION=$(sed -n 's/^VERSION = "\(.*\)"$/\1/p' src/tfs_standin/__init__.py)
CACHE=$ROOT/.cache/standin
SUITE=bookworm
PACKAGES=python3
BASE_RECIPE="base-v1 $SUITE $PACKAGES"
log() { printf 'build_standin_image: %s\n' "$*" >&2; }
[ -n "$VERSION" ] || { log "cannot read VERSION from src/tfs_standin/__init__.py"; exit 1; }
command -v docker >/dev/null || { log "docker is missing: run 'make docker-engine'"; exit 2; }

recipe=$( { cat "$0" images/standin/* src/tfs_standin/*.py src/tfs_wire/*.py; } \
  | sha256sum | cut -c1-16)
if [ "$FORCE" = 0 ] \
   && have=$(docker image inspect -f '{{index .Config.Labels "tfs-fleet.recipe"}}' "$IMAGE:latest" 2>/dev/null) \
   && [ "$have" = "$recipe" ]; then
  docker image inspect "$IMAGE:$VERSION" >/dev/null 2>&1 || docker tag "$IMAGE:latest" "$IMAGE:$VERSION"
  log "$IMAGE:latest is up to date (recipe $recipe)"
  exit 0
fi

start=$(date +%s)
mkdir -p "$CACHE/wheels"
workdir=$(mktemp -d "${TMPDIR:-/tmp}/tfsf-standin-build.XXXXXX")
trap 'rm -rf "$workdir"' EXIT

# Wheels for the image's python3.11 on x86_64 (the same set for download and install).
target=(--only-binary=:all: --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64
  --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none)

# 1. Wheelhouse, downloaded on this machine (pip skips files already in the cache).
if [ -n "${PIP:-}" ]; then read -r -a pip <<<"$PIP"
elif [ -x "$ROOT/.venv/bin/python" ]; then pip=("$ROOT/.venv/bin/python" -m pip)
else pip=(python3 -m pip); fi
log "wheelhouse: pip download into .cache/standin/wheels"
"${pip[@]}" download -q --disable-pip-version-check --no-deps "${target[@]}" \
  -r images/standin/requirements.txt -d "$CACHE/wheels" 2> >(grep -v "is ignored: it is neither" >&2)

# 2. Base root filesystem (cached by its own recipe).
base_hash=$(printf '%s' "$BASE_RECIPE" | sha256sum | cut -c1-12)
base_tar=$CACHE/base-$base_hash.tar
if [ ! -s "$base_tar" ]; then
  command -v debootstrap >/dev/null || { log "debootstrap is missing: apt-get install debootstrap"; exit 2; }
  [ "$(id -u)" -eq 0 ] || { log "debootstrap needs root"; exit 2; }
  mirror=${TFS_FLEET_DEBIAN_MIRROR:-$(grep -rhoE '^(URIs:|deb) +[a-z]+://[^ ]+/debian/?' \
    /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | head -n1 | awk '{print $2}' || true)}
  [ -n "$mirror" ] || { log "set TFS_FLEET_DEBIAN_MIRROR to a Debian mirror URL"; exit 2; }
  log "debootstrap $SUITE minbase + $PACKAGES (about a minute)"
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$workdir/base" "$mirror" \
    >"$workdir/debootstrap.log" 2>&1 || { tail -n 30 "$workdir/debootstrap.log" >&2; exit 1; }
  chroot "$workdir/base" apt-get clean
  # Trim what a model server never reads.
  rm -rf "$workdir/base"/var/lib/apt/lists/* "$workdir/base"/var/cache/apt/* \
    "$workdir/base"/var/log/* "$workdir/base"/usr/share/doc/* "$workdir/base"/usr/share/man/* \
    "$workdir/base"/usr/share/info/* "$workdir/base"/usr/share/locale/* \
    "$workdir/base"/usr/share/lintian "$workdir/base"/dev/* \
    "$workdir/base"/usr/lib/python3.11/{test,idlelib,tkinter,turtledemo,ensurepip,lib2to3}
  find "$workdir/base" -depth -name __pycache__ -type d -exec rm -rf {} +
  tar -C "$workdir/base" -cf "$base_tar.tmp" . && mv "$base_tar.tmp" "$base_tar"
  rm -rf "$workdir/base"
fi

# 3. Image root: base + wheels + the stand-in package + entry point.
ctx=$workdir/ctx
rootfs=$ctx/rootfs
site=$rootfs/opt/standin/site-packages
mkdir -p "$rootfs"
tar -C "$rootfs" -xf "$base_tar"
log "installing $(grep -cvE '^\s*(#|$)' images/standin/requirements.txt) wheels (--no-deps)"
"${pip[@]}" install -q --disable-pip-version-check --no-deps --no-index --no-compile \
  --find-links "$CACHE/wheels" "${target[@]}" --target "$site" -r images/standin/requirements.txt 2> >(grep -v "is ignored: it is neither" >&2)
# Strip what serving never loads: C++ headers, tests, caches, stubs, console scripts.
rm -rf "$site"/tensorflow/include "$site"/bin
find "$site" -depth \( -name __pycache__ -o -name tests \
  -o -name '*.pyi' \) -prune -exec rm -rf {} +
# Debug symbols of TensorFlow's own libraries (libtensorflow_cc alone: 752 -> 583 MB). Only
# TensorFlow's: stripping auditwheel-patched libraries (numpy.libs) breaks them.
if command -v strip >/dev/null; then
  find "$site/tensorflow" -type f -name '*.so*' -exec strip --strip-unneeded {} +
else
  log "strip (binutils) is missing: the image keeps its debug symbols (~170 MB more)"
fi
# The stand-in's own package and the wire table it shares with the controller (tfs_wire).
mkdir -p "$site/tfs_standin" "$site/tfs_wire" "$rootfs/models"
cp src/tfs_standin/*.py src/tfs_standin/py.typed "$site/tfs_standin/"
cp src/tfs_wire/*.py src/tfs_wire/py.typed "$site/tfs_wire/"
install -m 0755 images/standin/tf_serving_entrypoint.sh images/standin/tensorflow_model_server \
  "$rootfs/usr/bin/"
cp images/standin/Dockerfile "$ctx/"
# Bytecode for everything the server imports (the wheels above are installed --no-compile and the
# base has no __pycache__). Without it every container start compiles TensorFlow's Python from
# source: importing TensorFlow and the server took 8.5 s of CPU per start here, 3.8 s with it, and
# the rollouts and tests start the stand-in well over a hundred times per `make test`.
# unchecked-hash: the image never changes, so the .pyc files are never checked against their
# sources. PYTHONDONTWRITEBYTECODE stays set (nothing writes into a container's layer at run
# time). The image's own python3 compiles them, in a chroot (root, as debootstrap needs).
if [ "$(id -u)" -eq 0 ]; then
  chroot "$rootfs" python3 -m compileall -q --invalidation-mode unchecked-hash \
    /usr/lib/python3.11 /opt/standin/site-packages >"$workdir/compileall.log" 2>&1 || true
  failed=$(grep -c '^\*\*\*' "$workdir/compileall.log" || true)
  log "bytecode: $(find "$rootfs" -name '*.pyc' | wc -l) .pyc files (${failed:-0} sources did not compile)"
else
  log "not root (no chroot): the image has no bytecode, each start compiles TensorFlow"
fi

# 4. One-layer image.
log "docker build (one layer)"
docker build -q --label "tfs-fleet.recipe=$recipe" --label "tfs-fleet.standin-version=$VERSION" \
  --label "org.opencontainers.image.title=tfs-fleet serving stand-in (NOT TensorFlow Serving)" \
  -t "$IMAGE:latest" -t "$IMAGE:$VERSION" "$ctx" >/dev/null
# Smoke check: TensorFlow imports and the reference-style load path works in the image.
docker run --rm --entrypoint python3 "$IMAGE:latest" -c \
  'import tensorflow as tf, tfs_standin.server; print("tensorflow", tf.__version__)' \
  >"$workdir/smoke.log" 2>&1 || { tail -n 20 "$workdir/smoke.log" >&2; log "smoke check failed"; exit 1; }
size=$(docker image inspect -f '{{.Size}}' "$IMAGE:latest" | awk '{printf "%.0f MB", $1/1e6}')
log "built $IMAGE:latest and :$VERSION in $(( $(date +%s) - start )) s ($size, recipe $recipe)"
