#!/usr/bin/env bash
# Make sure a Docker engine answers on this machine.
#  - already answering: nothing to do;
#  - Debian/Ubuntu as root: install Debian's docker.io if dockerd is missing, then start it
#    (this machine and CI have no systemd, so dockerd is started in the background);
#  - anything else: stop with a message that says what to install.
set -euo pipefail

log() { printf 'ensure_docker: %s\n' "$*" >&2; }

if docker info >/dev/null 2>&1; then
  log "Docker engine answers ($(docker version --format '{{.Server.Version}}' 2>/dev/null))"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  log "no Docker engine answers and this is not root: install Docker (docker.io or docker-ce),"
  log "start it, and add $(id -un) to the docker group; then run this again"
  exit 1
fi
if ! grep -qiE '^ID(_LIKE)?=.*(debian|ubuntu)' /etc/os-release 2>/dev/null; then
  log "no Docker engine answers and this is not Debian/Ubuntu: install and start Docker yourself"
  exit 1
fi

if ! command -v dockerd >/dev/null 2>&1; then
  log "installing Debian's docker.io (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi

if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  log "starting docker with systemctl"
  systemctl start docker
else
  log "no systemd: starting dockerd in the background (log: /var/log/dockerd.log)"
  # Deliberately detached: the engine outlives this script, as a service would.
  setsid nohup dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
fi

for _ in $(seq 1 60); do
  if docker info >/dev/null 2>&1; then
    log "Docker engine answers ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 1
done
log "dockerd did not answer within 60 s; see /var/log/dockerd.log"
tail -n 20 /var/log/dockerd.log >&2 || true
exit 1
