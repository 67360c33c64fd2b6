"""scripts/sandbox_args: the arguments that hand a sandbox fleet's generated vault and vars to a
play (make demo, make rollout), only for the files that exist, in the order Ansible needs them
(the vault password file before the vaulted files)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "sandbox_args"


def sandbox_args(cwd: Path, *fleet: str, env: dict[str, str] | None = None) -> list[str]:
    out = subprocess.run([str(SCRIPT), *fleet], cwd=cwd, capture_output=True, text=True,
                         check=True, timeout=30, env=env or {"PATH": "/usr/bin:/bin"})  # fmt: skip
    return out.stdout.split()


def test_nothing_generated_no_arguments(tmp_path: Path) -> None:
    assert sandbox_args(tmp_path) == []
    assert sandbox_args(tmp_path, "other") == []


def test_the_fleets_files_in_order(tmp_path: Path) -> None:
    fleet = tmp_path / "artifacts" / "sandbox" / "demo"
    fleet.mkdir(parents=True)
    for name in ("image.yml", "registry.vault.yml", "vault-password"):
        (fleet / name).write_text("x\n")
    d = "artifacts/sandbox/demo"
    assert sandbox_args(tmp_path, "demo") == [
        "--vault-password-file", f"{d}/vault-password",
        "-e", f"@{d}/registry.vault.yml", "-e", f"@{d}/image.yml",
    ]  # fmt: skip
    (fleet / "become.vault.yml").write_text("x\n")
    assert sandbox_args(tmp_path, "demo")[2:4] == ["-e", f"@{d}/become.vault.yml"]
    # The fleet from TFS_FLEET_SANDBOX when none is named; another fleet's files are not used.
    env = {"PATH": "/usr/bin:/bin", "TFS_FLEET_SANDBOX": "demo"}
    assert len(sandbox_args(tmp_path, env=env)) == 8
    assert sandbox_args(tmp_path, "sandbox") == []
