#!/usr/bin/env bash
# Make sure this machine (the Ansible controller) has the programs that `make demo` and
# `make test` call, before anything else runs:
#   python3 + venv   the controller virtualenv (make venv)
#   rsync            model and image transfers (ansible.posix.synchronize runs rsync here)
#   ssh, ssh-keygen  the SSH connection to every host, the sandbox's own key pair
#   debootstrap      the test-host and stand-in images when no registry answers
#   make, git        the build itself
#   promtool         checks and unit-tests the alert rules and scrape config (Debian: prometheus)
#   docker-registry, htpasswd, skopeo
#                    the real registry the image role's tests pull from (Debian: docker-registry,
#                    apache2-utils, skopeo); the tests run their own instance on loopback (a
#                    service its package or prometheus's starts is stopped and disabled)
# On Debian/Ubuntu as root the missing ones are installed with apt-get; anywhere else the script
# stops with one message that names everything missing and the command that installs it.
#
#   scripts/ensure_controller_tools.sh [--check] [--help]
#     --check   only report; exit 1 if anything is missing
# Exit codes: 0 everything present (or installed), 1 something missing, 2 bad usage.
set -euo pipefail

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
CHECK=0
for arg in "$@"; do
  case "$arg" in
    --check) CHECK=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "ensure_controller_tools: unknown argument '$arg' (see --help)" >&2; exit 2 ;;
  esac
done

log() { printf 'ensure_controller_tools: %s\n' "$*" >&2; }

# command:Debian package
TOOLS="make:make git:git rsync:rsync ssh:openssh-client ssh-keygen:openssh-client debootstrap:debootstrap promtool:prometheus"
TOOLS="$TOOLS docker-registry:docker-registry htpasswd:apache2-utils skopeo:skopeo"
missing=()
for pair in $TOOLS; do
  cmd=${pair%%:*} pkg=${pair##*:}
  command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
# One entry per package, in order.
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk 'NF && !seen[$0]++')

if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi

if [ "$CHECK" = 1 ] || [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  log "missing on this machine: ${missing[*]}"
  log "install them first, for example: sudo apt-get install -y ${missing[*]}"
  exit 1
fi

log "installing ${missing[*]} (apt-get)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
log "installed ${missing[*]}"
# prometheus and docker-registry are here for their programs (promtool; the tests run their own
# registry on loopback): on a machine that runs systemd their packages would also start services
# on :9090 and :5000. The ones installed just now are stopped and disabled; one that was already
# installed is left as it was.
if [ -d /run/systemd/system ]; then
  for pkg in prometheus docker-registry; do
    if [[ " ${missing[*]} " == *" $pkg "* ]]; then
      systemctl disable --now "$pkg.service" >/dev/null 2>&1 || true
      log "stopped and disabled the $pkg service its package started (only its program is used)"
    fi
  done
fi
