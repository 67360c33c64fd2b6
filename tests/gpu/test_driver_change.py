"""Issue 24 item 4: what a driver change does to a running GPU host, every branch of both
decisions (module_utils nvidia_driver_change: change_plan before the run, activation_plan after
the packages changed) and the probe that feeds the second (roles/nvidia_driver/files/
gpu_holders.py) on a fake /proc. Reloading modules and rebooting cannot run in the sandbox's
containers; docs/live-fleet.md says what ran where."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.tfs_fleet.common.plugins.filter import gpu, host_change
from ansible_collections.tfs_fleet.common.plugins.module_utils.nvidia_driver_change import (
    DriverChangeError,
    activation_plan,
    change_plan,
)

from helpers import REPO

PKG = "nvidia-driver"
CID = "a" * 64
PERSISTENCED = "nvidia-persistenced.service"
HOLDERS = REPO / "roles/nvidia_driver/files/gpu_holders.py"


def installed(version: str | None) -> dict[str, Any]:
    return {} if version is None else {PKG: [{"version": version, "source": "apt"}]}


@pytest.mark.parametrize(
    ("kwargs", "action", "detail"),
    [
        ({"gpu_present": False}, "skip", "no NVIDIA GPU"),
        (
            {"gpu_present": False, "force": True, "installed": installed(None)},
            "install",
            "no driver yet",
        ),
        ({"installed": installed(None)}, "install", "branch 580"),
        (
            {"installed": installed("535.216.01-1~deb12u1")},
            "upgrade",
            "535.216.01-1~deb12u1 -> branch 580",
        ),
        (
            {"installed": installed("580.65.06-1"), "kernel_module_switch": True},
            "upgrade",
            "flavour",
        ),
        ({"installed": installed("580.65.06-1"), "loaded_version": "580.65.06"}, "none", ""),
        (
            {"installed": installed("580.82.07-1"), "loaded_version": "580.65.06"},
            "activate",
            "580.65.06 loaded",
        ),
        ({"installed": installed("580.82.07-1")}, "activate", "none loaded"),
        # A container never loads modules: the machine's driver is what it has.
        ({"installed": installed("580.82.07-1"), "in_container": True}, "none", ""),
        # A version string instead of package_facts' list is read the same.
        ({"installed": {PKG: "580.65.06-0ubuntu1"}, "loaded_version": "580.65.06"}, "none", ""),
    ],
)
def test_change_plan(kwargs: dict[str, Any], action: str, detail: str) -> None:
    args: dict[str, Any] = {"gpu_present": True, "version_package": PKG, "branch": "580", **kwargs}
    plan = change_plan(**args)
    assert plan["action"] == action
    assert detail in plan["detail"]


def test_change_plan_refuses_a_branch_that_is_not_one() -> None:
    with pytest.raises(DriverChangeError, match="580"):
        change_plan(gpu_present=True, version_package=PKG, branch="latest")


def base(**kwargs: Any) -> dict[str, Any]:
    """A bare-metal GPU host whose packages moved from 580.65.06 to 580.82.07, the running kernel
    having the new module."""
    return {
        "gpu_present": True,
        "in_container": False,
        "control_node": False,
        "package_version": "580.82.07-1",
        "loaded_version": "580.65.06",
        "module_version": "580.82.07",
        "loaded_modules": ["nvidia", "nvidia_uvm", "nvidia_modeset"],
        "holders": [],
        "containers": {},
        "services": ["nvidia-persistenced.service", "nvidia-fabricmanager.service"],
        "host": "gpu-1",
        **kwargs,
    }


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"gpu_present": False}, "no NVIDIA GPU"),
        ({"in_container": True}, "container"),
        ({"package_version": ""}, "no driver package"),
        ({"loaded_version": "580.82.07"}, "580.82.07 is loaded"),
    ],
)
def test_nothing_to_load(kwargs: dict[str, Any], reason: str) -> None:
    plan = activation_plan(**base(**kwargs))
    assert plan["action"] == "none" and reason in plan["reason"]
    assert plan["stop_containers"] == plan["unload"] == plan["load"] == []


def test_reload_stops_the_gpu_containers_and_services_and_reloads_in_dependency_order() -> None:
    other = "b" * 64
    plan = activation_plan(**base(
        loaded_modules=["nvidia", "nvidia_uvm", "nvidia_modeset", "nvidia_drm", "nvidia_peermem"],
        holders=[
            {"pid": 10, "comm": "tensorflow_mode", "unit": "", "container": CID},
            {"pid": 11, "comm": "tensorflow_mode", "unit": "docker-x.scope", "container": CID},
            {"pid": 12, "comm": "nvidia-persiste", "unit": PERSISTENCED, "container": ""},
        ],
        containers={CID: "tfserving", other: "node-exporter"},
    ))  # fmt: skip
    assert plan["action"] == "reload", plan
    assert plan["stop_containers"] == ["tfserving"]  # not the exporter: it holds no GPU
    assert plan["stop_services"] == ["nvidia-persistenced.service"]
    assert plan["unload"] == [
        "nvidia_peermem",
        "nvidia_drm",
        "nvidia_modeset",
        "nvidia_uvm",
        "nvidia",
    ]
    assert plan["load"] == [
        "nvidia",
        "nvidia_uvm",
        "nvidia_modeset",
        "nvidia_drm",
        "nvidia_peermem",
    ]


def test_reload_with_nothing_loaded_loads_what_cuda_needs() -> None:
    plan = activation_plan(**base(loaded_version="", loaded_modules=[]))
    assert (
        plan["action"] == "reload"
        and plan["unload"] == []
        and plan["load"] == ["nvidia", "nvidia_uvm"]
    )


def test_short_container_ids_from_the_engine_match() -> None:
    plan = activation_plan(**base(
        holders=[{"pid": 10, "comm": "tf", "unit": "", "container": CID}],
        containers={CID[:12]: "tfserving"},
    ))  # fmt: skip
    assert plan["stop_containers"] == ["tfserving"]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"nouveau_loaded": True, "loaded_version": ""}, "nouveau"),
        ({"module_version": "580.65.06"}, "has 580.65.06"),
        ({"module_version": ""}, "no nvidia module of version 580.82.07"),
        ({"reload": False}, "nvidia_driver_reload is false"),
    ],
)
def test_reboot(kwargs: dict[str, Any], reason: str) -> None:
    plan = activation_plan(**base(**kwargs))
    assert plan["action"] == "reboot" and reason in plan["reason"], plan
    assert plan["unload"] == []


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"control_node": True, "module_version": ""}, ["control node", "reboot it yourself"]),
        ({"reboot": False, "module_version": ""}, ["nvidia_driver_reboot is false"]),
        (
            {
                "holders": [
                    {"pid": 77, "comm": "python3", "unit": "session-3.scope", "container": ""}
                ]
            },
            ["python3 (pid 77)", "nvidia_driver_gpu_services"],
        ),
        (
            {"holders": [{"pid": 78, "comm": "trainer", "unit": "train.service", "container": ""}]},
            ["trainer (pid 78) of train.service"],
        ),
        (
            {"holders": [{"pid": 79, "comm": "tf", "unit": "", "container": CID}]},
            ["which the engine does not list"],
        ),
    ],
)
def test_manual(kwargs: dict[str, Any], words: list[str]) -> None:
    plan = activation_plan(**base(**kwargs))
    assert plan["action"] == "manual", plan
    for word in words:
        assert word in plan["reason"]
    # Nothing is stopped for a change the role will not make.
    assert plan["stop_containers"] == plan["stop_services"] == plan["unload"] == []


def test_malformed_holders_are_refused() -> None:
    with pytest.raises(DriverChangeError, match="container ID"):
        activation_plan(**base(holders=[{"pid": 1, "comm": "x", "container": "not-an-id"}]))
    with pytest.raises(DriverChangeError, match="mapping"):
        activation_plan(**base(holders=["pid 1"]))


def test_filters_wrap_errors_and_read_the_probe() -> None:
    filters = gpu.FilterModule().filters()
    probe = {
        "holders": [],
        "modules": ["nvidia", "nvidia_uvm"],
        "nouveau": False,
        "module_version": "580.82.07",
    }
    args = {
        k: v for k, v in base().items() if k not in ("holders", "loaded_modules", "module_version")
    }
    assert filters["nvidia_driver_activation"](probe, **args)["action"] == "reload"
    with pytest.raises(AnsibleFilterError, match=r"gpu_holders\.py gave no usable answer"):
        filters["nvidia_driver_activation"]({"error": "cannot read /proc"}, **args)
    with pytest.raises(AnsibleFilterError, match="package facts"):
        filters["nvidia_driver_change"]([], gpu_present=True, version_package=PKG, branch="580")
    assert (
        filters["nvidia_driver_change"](
            installed("535.1-1"), gpu_present=True, version_package=PKG, branch="580"
        )["action"]
        == "upgrade"
    )


@pytest.mark.parametrize(
    ("action", "drain"),
    [("install", True), ("upgrade", True), ("activate", True), ("none", False), ("skip", False)],
)
def test_a_driver_change_drains_a_serving_host(action: str, drain: bool) -> None:
    plan = host_change.host_change_plan({"nvidia_driver": {"action": action, "detail": "d"}}, True)
    assert plan["drain"] is drain
    assert (
        host_change.host_change_plan({"nvidia_driver": {"action": action}}, False)["drain"] is False
    )


def fake_proc(root: Path, dev: Path) -> Path:
    """A /proc with: pid 100 in a container holding /dev/nvidia0 and nvidiactl, pid 200 the
    persistence daemon holding nvidiactl, pid 300 holding nothing NVIDIA."""
    proc = root / "proc"
    (proc / "self").mkdir(parents=True)
    cgroups = {
        100: f"0::/system.slice/docker-{CID}.scope\n",
        200: "0::/system.slice/nvidia-persistenced.service\n",
        300: "0::/user.slice/user-1000.slice/session-3.scope\n",
    }
    devices = {100: ["nvidia0", "nvidiactl"], 200: ["nvidiactl"], 300: ["null"]}
    for pid, cgroup in cgroups.items():
        (proc / str(pid) / "fd").mkdir(parents=True)
        (proc / str(pid) / "comm").write_text(f"proc{pid}\n")
        (proc / str(pid) / "cgroup").write_text(cgroup)
        for i, name in enumerate(devices[pid]):
            node = dev / name
            node.touch()
            os.symlink(node, proc / str(pid) / "fd" / str(i + 3))
    (proc / "modules").write_text(
        "nvidia_uvm 1 0 - Live 0x0\nnvidia 2 1 nvidia_uvm, Live 0x0\n"
        "nouveau 3 0 - Live 0x0\next4 4 0 - Live 0\n"
    )
    return proc


def test_gpu_holders_reads_processes_units_containers_and_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The script matches /dev/nvidia* by path: point the fake fds at a /dev-like directory.
    dev = tmp_path / "dev"
    dev.mkdir()
    proc = fake_proc(tmp_path, dev)
    # Rewrite the links to /dev/... paths that need not exist (readlink only reads the link).
    for link in proc.glob("*/fd/*"):
        target = Path(os.readlink(link))
        link.unlink()
        os.symlink(f"/dev/{target.name}", link)
    out = subprocess.run(
        [sys.executable, str(HOLDERS), "--proc", str(proc), "--modinfo-version", "580.82.07"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["modules"] == ["nvidia", "nvidia_uvm"] and result["nouveau"] is True
    assert result["module_version"] == "580.82.07"
    by_pid = {h["pid"]: h for h in result["holders"]}
    assert sorted(by_pid) == [100, 200]
    assert by_pid[100]["container"] == CID and by_pid[100]["devices"] == [
        "/dev/nvidia0",
        "/dev/nvidiactl",
    ]
    assert by_pid[200] == {"pid": 200, "comm": "proc200", "unit": "nvidia-persistenced.service",
                           "container": "", "devices": ["/dev/nvidiactl"]}  # fmt: skip
    # And the decision it feeds: nouveau loaded means a reboot.
    args = {
        k: v for k, v in base().items() if k not in ("holders", "loaded_modules", "module_version")
    }
    assert gpu.nvidia_driver_activation(result, **args)["action"] == "reboot"


def test_gpu_holders_cgroup_v1_paths() -> None:
    sys.path.insert(0, str(HOLDERS.parent))
    try:
        import gpu_holders  # type: ignore[import-not-found]
    finally:
        sys.path.pop(0)
    assert gpu_holders.cgroup_owner(
        f"12:devices:/docker/{CID}\n1:name=systemd:/docker/{CID}\n"
    ) == ("", CID)
    assert gpu_holders.cgroup_owner("0::/system.slice/nvidia-fabricmanager.service\n") == (
        "nvidia-fabricmanager.service",
        "",
    )
    assert gpu_holders.cgroup_owner(
        f"0::/system.slice/containerd.service/kubepods/cri-containerd-{CID}.scope\n"
    ) == ("containerd.service", CID)
