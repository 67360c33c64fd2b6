#!/usr/bin/env bash
# Build the systemd-ready Debian image that plays a "GPU server" in molecule and the sandbox:
# systemd, sshd (host keys made at first boot, keys only, no root login), sudo, Python, rsync;
# then the same with Debian's Docker engine installed (build_engine_image below).
#
# SANDBOX_OS picks the release (one setting; default debian12):
#   debian12  bookworm: tfs-fleet/debian12-systemd, tfs-fleet/debian12-systemd-docker
#   debian13  trixie:   tfs-fleet/debian13-systemd, tfs-fleet/debian13-systemd-docker
#   mixed     both (the sandbox's mixed fleet: serving hosts alternate, LB and monitoring on 13)
# TFS_FLEET_BASE_ENGINE=no builds the bare image only (no engine image).
# Point molecule and the sandbox at the one you built with
#   TFS_FLEET_TEST_IMAGE=$(SANDBOX_OS=debian13 scripts/build_base_image.sh --print-image)
# Each sandbox host gets its login user and key when it is created (playbooks/sandbox.yml), as a
# cloud provider's image gets them from cloud-init.
#
#   scripts/build_base_image.sh [--force | --print-image | --print-engine-image]
#
# Source of the root filesystem (TFS_FLEET_BASE_SOURCE):
#   auto (default)  pull debian:12 when a registry answers, otherwise debootstrap
#   registry        docker build FROM debian:12 (needs a registry)
#   debootstrap     debootstrap + docker import (needs root and the debootstrap package)
# The image is cached: it is rebuilt only when this recipe changes (label tfs-fleet.recipe)
# or with --force. Users with a registry point molecule and the sandbox at other images
# (Ubuntu 22.04/24.04/26.04) with TFS_FLEET_TEST_IMAGE instead.
set -euo pipefail

SANDBOX_OS=${SANDBOX_OS:-debian12}
# mixed (a fleet in the middle of an OS upgrade, playbooks/sandbox.yml): both releases.
if [ "$SANDBOX_OS" = mixed ]; then
  SANDBOX_OS=debian12 "$0" "$@"
  exec env SANDBOX_OS=debian13 "$0" "$@"
fi
case "$SANDBOX_OS" in
  debian12) SUITE=bookworm; RELEASE=12 ;;
  debian13) SUITE=trixie; RELEASE=13 ;;
  *) printf 'build_base_image: SANDBOX_OS must be debian12 or debian13 (got %s)\n' "$SANDBOX_OS" >&2; exit 2 ;;
esac
IMAGE=${TFS_FLEET_BASE_IMAGE:-tfs-fleet/$SANDBOX_OS-systemd:latest}
ENGINE_IMAGE=${TFS_FLEET_ENGINE_IMAGE:-tfs-fleet/$SANDBOX_OS-systemd-docker:latest}
ENGINE_PACKAGES="docker.io python3-requests"
PROBE_IMAGE=tfs-fleet/probe:latest
SOURCE=${TFS_FLEET_BASE_SOURCE:-auto}
PACKAGES="systemd,systemd-sysv,dbus,python3,python3-apt,ca-certificates,gnupg,curl,iproute2,procps,kmod,rsync,sudo,less,openssh-server"
FORCE=0
case "${1:-}" in
  --force) FORCE=1 ;;
  --print-image) echo "$IMAGE"; exit 0 ;;
  --print-engine-image) echo "$ENGINE_IMAGE"; exit 0 ;;
  "") ;;
  *) printf 'build_base_image: unknown argument %s\n' "$1" >&2; exit 2 ;;
esac

log() { printf 'build_base_image: %s\n' "$*" >&2; }

# A few-MB image (static busybox from Debian's archive) that tests load into the engines inside
# the test hosts (docker save | docker load) to prove that a container runs there.
build_probe_image() {
  if [ "$FORCE" = 0 ] && docker image inspect "$PROBE_IMAGE" >/dev/null 2>&1; then return 0; fi
  local dir; dir=$(mktemp -d)
  (cd "$dir" && apt-get download -qq busybox-static >/dev/null 2>&1) \
    || { apt-get update -qq && (cd "$dir" && apt-get download -qq busybox-static); }
  dpkg-deb -x "$dir"/busybox-static_*.deb "$dir/pkg"
  mkdir -p "$dir/root/bin"
  cp "$dir/pkg/bin/busybox" "$dir/root/bin/busybox"
  for applet in sh echo cat sleep ls; do ln -s busybox "$dir/root/bin/$applet"; done
  tar -C "$dir/root" -c . | docker import -c 'CMD ["/bin/sh"]' - "$PROBE_IMAGE" >/dev/null
  rm -rf "$dir"
  log "built $PROBE_IMAGE"
}
build_probe_image


# Instructions that turn a plain root filesystem into a systemd "server".
dockerfile_tail() {
  cat <<'DOCKERFILE'
ENV container=docker
RUN find /etc/systemd/system /lib/systemd/system/multi-user.target.wants \
      /lib/systemd/system/sysinit.target.wants -name '*getty*' -delete 2>/dev/null; \
    rm -f /lib/systemd/system/sysinit.target.wants/systemd-firstboot.service \
          /etc/machine-id; touch /etc/machine-id; \
    systemctl mask systemd-logind.service getty.target console-getty.service \
          systemd-udevd.service systemd-udev-trigger.service 2>/dev/null || true
# sshd as on a real server: every container makes its own host keys at its first boot (an image
# must not ship them, or every host would share one), keys only, no root login.
RUN rm -f /etc/ssh/ssh_host_*; mkdir -p /etc/systemd/system/ssh.service.d; \
    printf '[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n' \
      >/etc/systemd/system/ssh.service.d/host-keys.conf; \
    printf 'PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n' \
      >/etc/ssh/sshd_config.d/tfs-fleet.conf; \
    systemctl enable ssh.service
STOPSIGNAL SIGRTMIN+3
CMD ["/lib/systemd/systemd"]
DOCKERFILE
}

# The sandbox's own settings for a nested engine, baked into the trixie images as a provider
# bakes its quirks into a golden image (never into the roles' defaults): Docker 26 and later
# (trixie's docker.io is 26.1.5) disable IPv6 on a container's eth0 on an IPv4-only network and
# refuse to start the container when that sysctl write fails, which it does inside this sandbox
# host (its /proc/sys is read-only: no --privileged). The variable is moby's own way out
# ("failed to disable IPv6 on container's interface eth0, set env var
# DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1"). A drop-in for a unit that is not installed yet
# does nothing until the engine comes.
dockerfile_nested_engine() {
  cat <<'DOCKERFILE'
RUN mkdir -p /etc/systemd/system/docker.service.d; \
    printf '# tfs-fleet sandbox image only: nested Docker 26+ (see scripts/build_base_image.sh)\n[Service]\nEnvironment=DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1\n' \
      >/etc/systemd/system/docker.service.d/tfs-fleet-sandbox-nested.conf
DOCKERFILE
}
# Debian 12's recipe stays what it was (its images are not rebuilt by this change).
dockerfile_os() {
  if [ "$SANDBOX_OS" = debian13 ]; then dockerfile_nested_engine; fi
  dockerfile_tail
}

# What the image is made of; bump RECIPE_REVISION when the rootfs steps below change.
RECIPE_REVISION=3
recipe=$( { dockerfile_os; echo "$RECIPE_REVISION $SUITE $PACKAGES"; } | sha256sum | cut -c1-16)
# up_to_date IMAGE RECIPE: the image exists with that recipe label (and no --force).
up_to_date() {
  local have
  [ "$FORCE" = 0 ] && have=$(docker image inspect -f '{{index .Config.Labels "tfs-fleet.recipe"}}' "$1" 2>/dev/null) \
    && [ "$have" = "$2" ] && log "$1 is up to date (recipe $2)"
}

# The same host with Debian's Docker engine installed (docker.io and python3-requests, as the
# docker role installs them): a provider's "golden image" with the engine baked in. The molecule
# scenarios whose subject is not the engine (the Makefile's ENGINE_IMAGE_SCENARIOS) and
# tests/hostchange start from it, so that each of their hosts does not download and unpack the
# engine again; the docker role still converges it there (pin, daemon.json merge, service). The
# docker scenario, the pytest tests, the fleet stage and `make demo` start from the bare image.
# Its package lists stay, as fresh as the build (the roles' apt cache_valid_time).
build_engine_image() {
  local base_id recipe dir start
  [ "${TFS_FLEET_BASE_ENGINE:-yes}" = no ] && return 0
  base_id=$(docker image inspect -f '{{.Id}}' "$IMAGE")
  recipe=$(echo "1 $base_id $ENGINE_PACKAGES" | sha256sum | cut -c1-16)
  up_to_date "$ENGINE_IMAGE" "$recipe" && return 0
  dir=$(mktemp -d)
  start=$(date +%s)
  printf 'FROM %s\nRUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq %s >/dev/null && apt-get clean\n' \
    "$IMAGE" "$ENGINE_PACKAGES" >"$dir/Dockerfile"
  log "installing $ENGINE_PACKAGES on $IMAGE"
  docker build -q --label "tfs-fleet.recipe=$recipe" -t "$ENGINE_IMAGE" "$dir" >"$dir/build.log" 2>&1 \
    || { cat "$dir/build.log" >&2; rm -rf "$dir"; exit 1; }
  rm -rf "$dir"
  log "built $ENGINE_IMAGE in $(( $(date +%s) - start )) s ($(docker image inspect -f '{{.Size}}' "$ENGINE_IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
}

if up_to_date "$IMAGE" "$recipe"; then
  build_engine_image
  exit 0
fi

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
start=$(date +%s)

if [ "$SOURCE" = auto ]; then
  if timeout 30 docker pull -q "debian:$RELEASE" >/dev/null 2>&1; then SOURCE=registry; else SOURCE=debootstrap; fi
  log "no source given: using $SOURCE"
fi

case "$SOURCE" in
  registry)
    { echo "FROM debian:$RELEASE"
      echo "RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $(echo "$PACKAGES" | tr , ' ') && rm -rf /var/lib/apt/lists/* && touch -d @0 /var/lib/apt/lists"
      dockerfile_os; } >"$workdir/Dockerfile"
    ;;
  debootstrap)
    command -v debootstrap >/dev/null || { log "debootstrap is missing: apt-get install debootstrap"; exit 1; }
    [ "$(id -u)" -eq 0 ] || { log "debootstrap needs root"; exit 1; }
    # The mirror this machine's apt already uses, unless one is given.
    mirror=${TFS_FLEET_DEBIAN_MIRROR:-$(grep -rhoE '^(URIs:|deb) +[a-z]+://[^ ]+/debian/?' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null | head -n1 | awk '{print $2}' || true)}
    [ -n "$mirror" ] || { log "set TFS_FLEET_DEBIAN_MIRROR to a Debian mirror URL"; exit 1; }
    log "debootstrap $SUITE from $mirror (about a minute)"
    debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$workdir/rootfs" "$mirror" >"$workdir/debootstrap.log" 2>&1 \
      || { tail -n 30 "$workdir/debootstrap.log" >&2; exit 1; }
    printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main contrib non-free non-free-firmware\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$mirror" "$SUITE" "$SUITE" >"$workdir/rootfs/etc/apt/sources.list.d/debian.sources"
    rm -f "$workdir/rootfs/etc/apt/sources.list"
    chroot "$workdir/rootfs" apt-get clean
    rm -rf "$workdir/rootfs/var/lib/apt/lists/"*
    # An empty, old package list: the first apt task with cache_valid_time refreshes it.
    touch -d @0 "$workdir/rootfs/var/lib/apt/lists"
    tar -C "$workdir/rootfs" -c . | docker import - "tfs-fleet/$SANDBOX_OS-rootfs:build" >/dev/null
    { echo "FROM tfs-fleet/$SANDBOX_OS-rootfs:build"; dockerfile_os; } >"$workdir/Dockerfile"
    ;;
  *) log "TFS_FLEET_BASE_SOURCE must be auto, registry or debootstrap (got '$SOURCE')"; exit 2 ;;
esac

docker build -q --label "tfs-fleet.recipe=$recipe" -t "$IMAGE" "$workdir" >"$workdir/build.log" 2>&1 \
  || { cat "$workdir/build.log" >&2; exit 1; }
docker image rm "tfs-fleet/$SANDBOX_OS-rootfs:build" >/dev/null 2>&1 || true
log "built $IMAGE from $SOURCE in $(( $(date +%s) - start )) s ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
build_engine_image
