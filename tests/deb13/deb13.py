"""Issue 26's proof: Debian 13 hosts made outside this project, reached as a new user reaches them.

Each host is a debootstrap trixie *minbase* with systemd, openssh-server, sudo and python3 and
nothing that the project's sandbox images add (no rsync, curl, gnupg, docker.io, no docker.service
drop-in), run as a systemd container; the provider's step gives it the login user ``ops`` with a key
and a sudo rule (the sandbox's own script, as cloud-init would). ``site.yml`` then reaches it over
SSH as ``ops`` with sudo, like a production inventory:

* ``deb13-1`` serves (group gpu_servers, canary): SSH 127.0.0.1:32401, gRPC 32501, REST 32601;
* ``deb13-lb`` is the load balancer and the monitoring host (groups lb, monitoring): SSH 32400,
  the front doors 32500 (gRPC) and 32600 (REST), Prometheus 32690.

The serving host runs with ``--security-opt systempaths=unconfined`` (its /proc/sys writable,
as on a real machine): Docker 26 writes the IPv6 sysctl of each container's interface and fails
on the read-only /proc/sys of an unprivileged container. That is the machine's setting, not
something inside the host; the project's own sandbox images handle the same quirk with a
docker.service drop-in instead (scripts/build_base_image.sh).

    python tests/deb13/deb13.py up      # build the image if missing, start and provision the hosts
    python tests/deb13/deb13.py site    # site.yml twice: times, changed, results.json
    python tests/deb13/deb13.py down    # remove the hosts, their volumes and the network

``make test-deb13`` runs tests/deb13/test_deb13_host.py (marker ``deb13``; not in ``make test``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
IMAGE = "tfs-fleet/deb13-minbase:latest"
SUITE = "trixie"
# Exactly what the issue names: a minbase with systemd, openssh-server, sudo and python3.
PACKAGES = "systemd,systemd-sysv,openssh-server,sudo,python3"
# The image's label: a digest of what it is made of (rebuilt when that changes).
RECIPE = hashlib.sha256(f"1 {SUITE} minbase {PACKAGES}".encode()).hexdigest()[:16]
FLEET = "deb13"
NETWORK = "tfs-fleet-deb13"
SSH_BASE, GRPC_BASE, REST_BASE, PROMETHEUS_PORT = 32400, 32500, 32600, 32690
USER = "ops"
ARTIFACTS = REPO / "artifacts" / FLEET
# The base flags every systemd container of the project uses (tests/helpers.SYSTEMD_FLAGS).
SYSTEMD_FLAGS = [
    "--cap-add", "SYS_ADMIN", "--cap-add", "NET_ADMIN", "--security-opt", "seccomp=unconfined",
    "--cgroupns=host", "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw",
    "--tmpfs", "/run", "--tmpfs", "/run/lock", "-e", "container=docker",
]  # fmt: skip


@dataclass(frozen=True)
class Host:
    name: str
    groups: tuple[str, ...]
    ports: dict[int, int]  # published on 127.0.0.1: host port -> container port
    nested_engine: bool

    @property
    def ssh_port(self) -> int:
        return next(p for p, c in self.ports.items() if c == 22)


HOSTS = (
    Host("deb13-1", ("gpu_servers", "canary"),
         {SSH_BASE + 1: 22, GRPC_BASE + 1: 8500, REST_BASE + 1: 8501}, nested_engine=True),
    Host("deb13-lb", ("lb", "monitoring"),
         {SSH_BASE: 22, GRPC_BASE: 8500, REST_BASE: 8501, PROMETHEUS_PORT: 9090},
         nested_engine=False),
)  # fmt: skip


def published_ports() -> set[int]:
    return {port for host in HOSTS for port in host.ports}


def log(message: str) -> None:
    print(f"deb13: {message}", file=sys.stderr, flush=True)


def run(*argv: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, **kwargs)


def docker(*args: str, check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return run("docker", *args, check=check, **kwargs)


def _mirror() -> str:
    mirror = os.environ.get("TFS_FLEET_DEBIAN_MIRROR", "")
    if mirror:
        return mirror
    pattern = re.compile(r"^(?:URIs:|deb)\s+([a-z]+://\S+/debian)/?(?:\s|$)", re.M)
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        if path.is_file() and (match := pattern.search(path.read_text(errors="replace"))):
            return match.group(1)
    raise SystemExit("deb13: set TFS_FLEET_DEBIAN_MIRROR to a Debian mirror URL")


def build_image(force: bool = False) -> float:
    """debootstrap the minbase and import it (cached by its recipe label); seconds spent."""
    have = docker("image", "inspect", "-f", '{{index .Config.Labels "tfs-fleet.recipe"}}', IMAGE,
                  check=False).stdout.strip()  # fmt: skip
    if have == RECIPE and not force:
        return 0.0
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "rootfs"
        log(f"debootstrap --variant=minbase {SUITE} ({PACKAGES})")
        proc = run("debootstrap", "--variant=minbase", f"--include={PACKAGES}", SUITE, str(root),
                   _mirror(), check=False)  # fmt: skip
        if proc.returncode != 0:
            raise SystemExit(
                f"deb13: debootstrap failed:\n{proc.stdout[-3000:]}{proc.stderr[-2000:]}"
            )
        run("chroot", str(root), "apt-get", "clean")
        tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
        imported = subprocess.run(
            ["docker", "import", "-c", 'CMD ["/lib/systemd/systemd"]',
             "-c", f"LABEL tfs-fleet.recipe={RECIPE}", "-", IMAGE],
            stdin=tar.stdout, check=False, capture_output=True, text=True,
        )  # fmt: skip
        assert tar.stdout is not None
        tar.stdout.close()  # a failed import must not leave tar blocked on the pipe
        tar.wait()
        if imported.returncode != 0:
            raise SystemExit(f"deb13: docker import failed: {imported.stderr}")
    seconds = time.monotonic() - start
    log(f"built {IMAGE} in {seconds:.0f} s")
    return seconds


def _wait(what: str, probe: Any, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise SystemExit(f"deb13: timed out waiting for {what}")
        time.sleep(1)


def up() -> None:
    """Start and provision the hosts (idempotent), then write the inventory."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    key = ARTIFACTS / "id_ed25519"
    if not key.exists():
        run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{USER}@{FLEET}", "-f", str(key))
    if docker("network", "inspect", NETWORK, check=False).returncode != 0:
        docker("network", "create", NETWORK)
    script = (REPO / "playbooks/files/sandbox_provision_user.sh").read_text()
    known = []
    for host in HOSTS:
        if docker("container", "inspect", host.name, check=False).returncode != 0:
            flags = [*SYSTEMD_FLAGS, "-v", f"{host.name}-docker:/var/lib/docker"]
            if host.nested_engine:
                flags += ["--security-opt", "systempaths=unconfined"]
            for published, port in host.ports.items():
                flags += ["-p", f"127.0.0.1:{published}:{port}"]
            # systemd stops on SIGRTMIN+3 (docker import of Docker 20.10 takes no STOPSIGNAL).
            flags += ["--stop-signal", "SIGRTMIN+3"]
            docker("run", "-d", "--name", host.name, "--hostname", host.name, "--network", NETWORK,
                   "--label", f"tfs-fleet.deb13={FLEET}", *flags, IMAGE)  # fmt: skip
        _wait(f"systemd in {host.name}", lambda h=host: docker(
            "exec", h.name, "systemctl", "is-system-running", check=False
        ).stdout.strip() in ("running", "degraded"))  # fmt: skip
        # The provider's step: login user, key, sudo rule (no password).
        docker("exec", "-i", host.name, "sh", "-c", script, "provision", USER, "nopasswd",
               (ARTIFACTS / "id_ed25519.pub").read_text().strip(), "keep")  # fmt: skip
        hostkey = docker(
            "exec", host.name, "cat", "/etc/ssh/ssh_host_ed25519_key.pub"
        ).stdout.split()
        known.append(f"[127.0.0.1]:{host.ssh_port} {hostkey[0]} {hostkey[1]}")
    (ARTIFACTS / "known_hosts").write_text("\n".join(known) + "\n")
    write_inventory()
    for host in HOSTS:
        _wait(f"ssh to {host.name}", lambda h=host: run(
            "ssh", *_ssh_args(h), "true", check=False).returncode == 0)  # fmt: skip


def _ssh_args(host: Host) -> list[str]:
    return ["-p", str(host.ssh_port), "-i", str(ARTIFACTS / "id_ed25519"),
            "-o", f"UserKnownHostsFile={ARTIFACTS / 'known_hosts'}", "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", f"{USER}@127.0.0.1"]  # fmt: skip


def ssh(host: Host, command: str) -> subprocess.CompletedProcess[str]:
    return run("ssh", *_ssh_args(host), command, check=False)


def inventory() -> dict[str, Any]:
    """A production-style inventory (docs/ssh.md): hosts by address and port, ops with its key."""
    common = f"-o UserKnownHostsFile={ARTIFACTS / 'known_hosts'} -o IdentitiesOnly=yes"
    hosts: dict[str, Any] = {}
    groups: dict[str, dict[str, Any]] = {}
    for host in HOSTS:
        grpc = next((p for p, c in host.ports.items() if c == 8500), 0)
        rest = next((p for p, c in host.ports.items() if c == 8501), 0)
        hosts[host.name] = {
            "ansible_host": "127.0.0.1", "ansible_port": host.ssh_port, "ansible_user": USER,
            "ansible_ssh_private_key_file": str(ARTIFACTS / "id_ed25519"),
            "ansible_ssh_common_args": common,
            # Peers reach each other by name on the network; the controller by the published ports.
            "tfserving_lb_server_address": host.name, "tfserving_monitoring_address": host.name,
            "tfserving_verify_grpc_endpoint": f"127.0.0.1:{grpc}",
            "tfserving_verify_rest_endpoint": f"127.0.0.1:{rest}",
        }  # fmt: skip
        for group in host.groups:
            groups.setdefault(group, {"hosts": {}})["hosts"][host.name] = None
    group_vars = {
        # The sandbox's settings (inventories/sandbox/group_vars): no PCI bus, the stand-in
        # image as an archive, the demo model, log rotation.
        "docker_install_source": "distribution",
        "docker_daemon_options": {"log-driver": "json-file",
                                  "log-opts": {"max-size": "10m", "max-file": "3"}},
        "nvidia_driver_pci_devices_path": "/nonexistent/deb13-hosts-have-no-pci-bus",
        "tfserving_models_list": [{"name": "half_plus_two"}],
        "tfserving_bind_address": "0.0.0.0",
        "tfserving_verify_wait_seconds": 180,
        "tfserving_gpu": "never",
        "tfserving_image_source": "archive",
        "tfserving_image_archive_path": str(REPO / "artifacts/images/serving-standin.tar"),
        "tfserving_image_archive_ref": "tfs-fleet/serving-standin:latest",
        "tfserving_image_archive_transfer": "rsync",
        "tfserving_models_export_base": str(ARTIFACTS / "models"),
    }  # fmt: skip
    return {"all": {"hosts": hosts, "vars": group_vars, "children": groups}}


def write_inventory() -> Path:
    path = ARTIFACTS / "inventory.json"
    path.write_text(json.dumps(inventory(), indent=2) + "\n")
    return path


_RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<stats>(?:\w+=\d+\s*)+)$")


def recap(output: str) -> dict[str, dict[str, int]]:
    """{host: {ok, changed, ...}} of the last PLAY RECAP."""
    out: dict[str, dict[str, int]] = {}
    if "PLAY RECAP" not in output:
        return out
    for line in output.rsplit("PLAY RECAP", 1)[1].splitlines():
        if match := _RECAP.match(line.strip()):
            out[match["host"]] = {
                k: int(v) for k, v in (i.split("=") for i in match["stats"].split())
            }
    return out


def export_model() -> None:
    if not (ARTIFACTS / "models/half_plus_two/1").exists():
        run(str(BIN / "python"), str(REPO / "scripts/export_model.py"), "--demo", "half_plus_two",
            "--export-base", str(ARTIFACTS / "models"), cwd=REPO)  # fmt: skip


def site(label: str) -> dict[str, Any]:
    """One site.yml run over SSH; its output is kept in artifacts/deb13/<label>.log."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    start = time.monotonic()
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(ARTIFACTS / "inventory.json"), "site.yml"],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=3000, check=False,
    )  # fmt: skip
    seconds = time.monotonic() - start
    (ARTIFACTS / f"{label}.log").write_text(proc.stdout + proc.stderr)
    result = {"rc": proc.returncode, "seconds": round(seconds, 1), "recap": recap(proc.stdout)}
    log(f"{label}: rc {proc.returncode} in {seconds:.0f} s, recap {result['recap']}")
    return result


def facts() -> dict[str, str]:
    """What ran on the hosts, read over SSH: the OS and the packages' versions."""
    serving, edge = HOSTS

    def version(host: Host, package: str) -> str:
        return ssh(host, f"dpkg-query -W -f '${{Version}}' {package}").stdout.strip()

    return {
        "os": ssh(serving, ". /etc/os-release; echo $PRETTY_NAME").stdout.strip(),
        "debian_version": ssh(serving, "cat /etc/debian_version").stdout.strip(),
        "docker.io": version(serving, "docker.io"),
        "docker-cli": version(serving, "docker-cli"),
        "engine": ssh(serving, "sudo docker version -f '{{.Server.Version}}'").stdout.strip(),
        "haproxy": version(edge, "haproxy"),
        "prometheus": version(edge, "prometheus"),
        "python3": version(serving, "python3"),
    }


def down() -> None:
    for host in HOSTS:
        docker("rm", "-f", "-v", host.name, check=False)
        docker("volume", "rm", f"{host.name}-docker", check=False)
    docker("network", "rm", NETWORK, check=False)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else ""
    if command == "up":
        build_image(force="--force" in argv)
        up()
    elif command == "site":
        export_model()
        first, second = site("site-1"), site("site-2")
        results = {"first": first, "second": second, "facts": facts()}
        (ARTIFACTS / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results, indent=2))
    elif command == "down":
        down()
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
