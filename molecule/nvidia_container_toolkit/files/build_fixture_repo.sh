#!/usr/bin/env bash
# TEST FIXTURE for the nvidia_container_toolkit molecule scenario, run inside the test
# container by prepare.yml. NVIDIA's repository cannot be reached here, so this builds a local,
# signed, flat apt repository (the layout of nvidia.github.io/libnvidia-container/stable/deb/<arch>)
# holding EMPTY packages that only carry the real packages' names, versions and dependencies.
# They contain no NVIDIA software: each ships one README saying it is a test fixture.
# Two toolkit versions are published so that the test can show the pin choosing the older one.
# nvidia-container-toolkit-base also carries a FAKE nvidia-ctk (a shell script: `--version`,
# and `cdi generate --output=F` writing a minimal CDI spec with no device) and the two
# nvidia-cdi-refresh units with the upstream names, so that the role's CDI steps run for real.
set -euo pipefail
root=${1:?usage: build_fixture_repo.sh REPO_ROOT}
arch=$(dpkg --print-architecture)
repo="$root/deb/$arch"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$repo"

build() { # build NAME VERSION DEPENDS
  local name=$1 version=$2 depends=$3 dir="$work/$1_$2"
  mkdir -p "$dir/DEBIAN" "$dir/usr/share/doc/$name"
  printf 'TEST FIXTURE: empty stand-in for %s %s (tfs-fleet molecule); no NVIDIA software.\n' \
    "$name" "$version" >"$dir/usr/share/doc/$name/README.tfs-fleet-fixture"
  {
    printf 'Package: %s\nVersion: %s\nArchitecture: %s\n' "$name" "$version" "$arch"
    printf 'Maintainer: tfs-fleet tests <tests@tfs-fleet.invalid>\n'
    [ -n "$depends" ] && printf 'Depends: %s\n' "$depends"
    printf 'Description: TEST FIXTURE stand-in for %s\n' "$name"
    printf ' Empty package with the real name and version; built by a molecule prepare step.\n'
  } >"$dir/DEBIAN/control"
  if [ "$name" = nvidia-container-toolkit-base ]; then fake_ctk "$dir" "$version"; fi
  dpkg-deb --build --root-owner-group "$dir" "$repo/${name}_${version}_${arch}.deb" >/dev/null
}

fake_ctk() { # fake_ctk PACKAGE_DIR VERSION: the fake nvidia-ctk and the refresh units
  local dir=$1 version=$2
  mkdir -p "$dir/usr/bin" "$dir/lib/systemd/system"
  {
    printf '#!/bin/sh\n# TEST FIXTURE: fake nvidia-ctk (tfs-fleet molecule); no NVIDIA software.\n'
    printf 'case "$1" in\n'
    printf '  --version) echo "NVIDIA Container Toolkit CLI version %s (TEST FIXTURE)" ;;\n' "${version%-*}"
    printf '  cdi)\n    [ "$2" = generate ] || exit 2\n    out=/dev/stdout\n'
    printf '    for arg in "$@"; do case "$arg" in --output=*) out=${arg#--output=} ;; esac; done\n'
    printf '    mkdir -p "$(dirname "$out")"\n'
    printf "    printf '%%s\\\\n' '---' 'cdiVersion: 0.5.0' 'kind: nvidia.com/gpu' 'devices:' \\\\\n"
    printf "      '- name: all' '  containerEdits:' '    env: [TFSF_FIXTURE_CDI=all]' >\"\$out\"\n"
    printf '    ;;\n  *) exit 2 ;;\nesac\n'
  } >"$dir/usr/bin/nvidia-ctk"
  chmod 0755 "$dir/usr/bin/nvidia-ctk"
  printf '%s\n' '# TEST FIXTURE unit (upstream name)' '[Unit]' 'Description=fixture CDI refresh trigger' \
    '[Path]' 'PathChanged=/usr/bin/nvidia-ctk' '[Install]' 'WantedBy=multi-user.target' \
    >"$dir/lib/systemd/system/nvidia-cdi-refresh.path"
  printf '%s\n' '# TEST FIXTURE unit (upstream name)' '[Unit]' 'Description=fixture CDI refresh' \
    '[Service]' 'Type=oneshot' 'ExecStart=/usr/bin/nvidia-ctk cdi generate --output=/var/run/cdi/nvidia.yaml' \
    '[Install]' 'WantedBy=multi-user.target' >"$dir/lib/systemd/system/nvidia-cdi-refresh.service"
}

# The role's pin (1.20.0-1, NVIDIA's latest release on 2026-12-07) and a newer version that the pin
# must hold back: 1.21.0-1 exists only in this fixture (no such release was published).
for v in 1.20.0-1 1.21.0-1; do
  build libnvidia-container1 "$v" ""
  build libnvidia-container-tools "$v" "libnvidia-container1 (>= $v)"
  build nvidia-container-toolkit-base "$v" ""
  build nvidia-container-toolkit "$v" "nvidia-container-toolkit-base (= $v), libnvidia-container-tools (>= $v)"
done
build nvidia-docker2 2.14.0-1 "nvidia-container-toolkit (>= 1.17.0)"

cd "$repo"
: >Packages
for deb in *.deb; do
  {
    dpkg-deb -f "$deb"
    printf 'Filename: ./%s\nSize: %s\nSHA256: %s\n\n' "$deb" "$(stat -c %s "$deb")" \
      "$(sha256sum "$deb" | cut -d' ' -f1)"
  } >>Packages
done
{
  printf 'Origin: tfs-fleet test fixture\nLabel: tfs-fleet test fixture\n'
  printf 'Date: %s\nSHA256:\n' "$(date -Ru)"
  printf ' %s %s Packages\n' "$(sha256sum Packages | cut -d' ' -f1)" "$(stat -c %s Packages)"
} >Release

export GNUPGHOME="$root/gnupg"
mkdir -p -m 0700 "$GNUPGHOME"
gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
  --quick-gen-key 'tfs-fleet test fixture <fixture@tfs-fleet.invalid>' rsa2048 sign never
gpg --batch --yes --quiet --pinentry-mode loopback --passphrase '' --clearsign -o InRelease Release
gpg --batch --yes --armor --export >"$root/gpgkey"
ls "$repo"
