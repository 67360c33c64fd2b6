# Run inside a new sandbox host as root (sh -c SCRIPT NAME USER SUDO PUBKEY PASSWORD_MODE):
# the login user with its authorized key and sudo rule, as cloud-init's users module sets them
# up on a cloud image. SUDO: nopasswd or password. PASSWORD_MODE: reset sets the password read
# from standard input; keep sets it only for a user created now. Prints "changed" if it changed.
set -eu
user=$1 sudo=$2 pubkey=$3 password_mode=$4
changed=
if ! id -u "$user" >/dev/null 2>&1; then
  useradd --create-home --shell /bin/bash "$user"
  changed=1
  [ "$sudo" = password ] && password_mode=reset
fi
home=$(getent passwd "$user" | cut -d: -f6)
if ! grep -qxF "$pubkey" "$home/.ssh/authorized_keys" 2>/dev/null; then
  install -d -m 0700 -o "$user" -g "$user" "$home/.ssh"
  printf '%s\n' "$pubkey" >"$home/.ssh/authorized_keys"
  chown "$user:$user" "$home/.ssh/authorized_keys"
  chmod 0600 "$home/.ssh/authorized_keys"
  changed=1
fi
if [ "$sudo" = nopasswd ]; then rule="$user ALL=(ALL:ALL) NOPASSWD: ALL"; else rule="$user ALL=(ALL:ALL) ALL"; fi
if [ "$(cat /etc/sudoers.d/90-sandbox-login 2>/dev/null)" != "$rule" ]; then
  printf '%s\n' "$rule" >/etc/sudoers.d/90-sandbox-login.new
  chmod 0440 /etc/sudoers.d/90-sandbox-login.new
  visudo -cqf /etc/sudoers.d/90-sandbox-login.new
  mv /etc/sudoers.d/90-sandbox-login.new /etc/sudoers.d/90-sandbox-login
  changed=1
fi
if [ "$sudo" = password ] && [ "$password_mode" = reset ]; then
  IFS= read -r password
  # SHA-512 crypt, as a provider hands it over (cloud-init's users module takes a crypt hash,
  # usually made with `mkpasswd -m sha-512`), not Debian's default yescrypt: sudo hashes the
  # password at every become, that is each task on each host, and yescrypt costs about 45 ms of
  # CPU more each time (measured here: 58 ms against 15 ms a sudo).
  printf '%s:%s\n' "$user" "$password" | chpasswd --crypt-method SHA512
  changed=1
fi
[ -z "$changed" ] || echo changed
