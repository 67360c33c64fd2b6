#!/usr/bin/env bash
# Build the test-host image with Debian's Docker engine already installed (docker.io and
# python3-requests, as the docker role installs them), on top of the base image
# (scripts/build_base_image.sh): a provider's "golden image" with the engine baked in.
#
#   scripts/build_engine_image.sh [--force]
#
# The molecule scenarios whose subject is not the engine start from it (the Makefile's
# ENGINE_IMAGE_SCENARIOS, and tests/hostchange), so that each of their hosts does not download and
# unpack the engine again: the docker role still runs on them (pin, daemon.json merge, service),
# on an engine it did not install. The docker scenario, the pytest tests and the fleet stage
# start from the bare base image and install the engine from nothing.
# The package lists stay in the image, as fresh as the build: the roles' apt tasks
# (cache_valid_time) do not download them again within the hour.
# Cached: rebuilt when the base image or this recipe changes (label tfs-fleet.recipe), or with
# --force.
set -euo pipefail

BASE=${TFS_FLEET_BASE_IMAGE:-tfs-fleet/debian12-systemd:latest}
IMAGE=${TFS_FLEET_ENGINE_IMAGE:-tfs-fleet/debian12-systemd-docker:latest}
PACKAGES="docker.io python3-requests"
RECIPE_REVISION=1
FORCE=0
[ "${1:-}" = "--force" ] && FORCE=1
[ "${1:-}" = "--help" ] && { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0; }

log() { printf 'build_engine_image: %s\n' "$*" >&2; }

base_id=$(docker image inspect -f '{{.Id}}' "$BASE" 2>/dev/null) \
  || { log "$BASE is missing: run scripts/build_base_image.sh first"; exit 1; }
recipe=$(echo "$RECIPE_REVISION $base_id $PACKAGES" | sha256sum | cut -c1-16)
if [ "$FORCE" = 0 ] && have=$(docker image inspect -f '{{index .Config.Labels "tfs-fleet.recipe"}}' "$IMAGE" 2>/dev/null) \
   && [ "$have" = "$recipe" ]; then
  log "$IMAGE is up to date (recipe $recipe)"
  exit 0
fi

workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
start=$(date +%s)
cat >"$workdir/Dockerfile" <<DOCKERFILE
FROM $BASE
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PACKAGES >/dev/null \\
    && apt-get clean
DOCKERFILE
log "installing $PACKAGES on $BASE"
docker build -q --label "tfs-fleet.recipe=$recipe" -t "$IMAGE" "$workdir" >"$workdir/build.log" 2>&1 \
  || { cat "$workdir/build.log" >&2; exit 1; }
log "built $IMAGE in $(( $(date +%s) - start )) s ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}'))"
