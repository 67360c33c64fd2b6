"""The tfserving_image role run by ansible-playbook against the controller's own engine.

Every run here is in check mode (nothing on this machine changes; the engine is only asked
what it has) except the build-context rendering, which writes into a temporary directory.
Several inventory aliases of localhost stand for hosts with different facts, so one run
covers the CPU tag, the GPU tag, the digest pin, the CUDA gate refusing and switching to a
build, the archive path and bad input. The pull source's login and its failures run against
the real registry (Debian's docker-registry on the controller's loopback: registry_server.py).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from registry_server import Registry, make_ca, real_registry

from helpers import ansible_playbook, docker, report_of, require_docker_image

PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
DIGEST = "sha256:" + "ab" * 32
PRIVATE_REPO = "registry.example.internal:5000/ml/tensorflow-serving"
PROBE = "tfs-fleet/probe:latest"
SOURCE_SHA256 = "5" * 64  # a pinned value as an operator sets it; the render never downloads
STANDIN = "tfs-fleet/serving-standin:latest"

Report = dict[str, Any]


def write_inventory(path: Path, hosts: dict[str, dict[str, Any]]) -> Path:
    local = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
    path.write_text(yaml.safe_dump({"all": {"vars": local, "hosts": hosts}}))
    return path


def run_playbook(
    playbook: Path, inventory: Path, *args: str, json_output: bool = True
) -> subprocess.CompletedProcess[str]:
    return ansible_playbook(playbook, inventory, *args, timeout=300, json_report=json_output)


def parse(proc: subprocess.CompletedProcess[str]) -> Report:
    return report_of(proc)


def results(report: Report, prefix: str) -> dict[str, dict[str, Any]]:
    """Per-host results of the tasks whose name starts with prefix (after the role name)."""
    found: dict[str, dict[str, Any]] = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            name = task["task"]["name"].split(" : ", 1)[-1]
            if name.startswith(prefix):
                for host, result in task["hosts"].items():
                    if not result.get("skipped"):
                        found[host] = result
    return found


def module_name_arg(report: Report, prefix: str, host: str) -> str:
    return results(report, prefix)[host]["invocation"]["module_args"]["name"]


@pytest.fixture(scope="module")
def probe_archive(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    require_docker_image(PROBE)
    path = tmp_path_factory.mktemp("archive") / "probe.tar"
    docker("save", "-o", str(path), PROBE)
    return path, docker("image", "inspect", "--format", "{{.Id}}", PROBE).stdout.strip()


@pytest.fixture(scope="module")
def check_run(
    tmp_path_factory: pytest.TempPathFactory, probe_archive: tuple[Path, str]
) -> tuple[int, Report]:
    old_gpu = {"nvidia_driver_gpu_present": True, "nvidia_driver_installed_version": "396.37"}
    hosts: dict[str, dict[str, Any]] = {
        "cpu-host": {},
        "gpu-host": {"nvidia_driver_gpu_present": True,
                     "nvidia_driver_installed_version": "535.104.05"},
        "digest-host": {"tfserving_image_repository": PRIVATE_REPO,
                        "tfserving_image_digest": DIGEST,
                        "tfserving_image_registry_check": False},
        "old-gpu-fail": old_gpu,
        "old-gpu-build": {**old_gpu, "tfserving_image_on_incompatible": "build",
                          "tfserving_image_build_source_sha256": SOURCE_SHA256},
        "archive-host": {"tfserving_image_source": "archive",
                         "tfserving_image_archive_path": str(probe_archive[0])},
        "archive-no-path": {"tfserving_image_source": "archive"},
        "standin-host": {"tfserving_image_source": "standin"},
        "standin-missing": {"tfserving_image_source": "standin",
                            "tfserving_image_standin_ref": "tfsf-image/absent:never"},
        "bad-source": {"tfserving_image_source": "registry"},
        "bad-digest": {"tfserving_image_digest": "ab" * 32},
    }  # fmt: skip
    inventory = write_inventory(tmp_path_factory.mktemp("inv") / "hosts.yml", hosts)
    # Only the role's tag: proves every task the run needs carries it.
    proc = run_playbook(PLAYBOOKS / "role.yml", inventory, "--check", "--tags", "tfserving_image")
    return proc.returncode, parse(proc)


@pytest.mark.docker
def test_cpu_host_pulls_the_cpu_tag(check_run: tuple[int, Report]) -> None:
    _, report = check_run
    assert module_name_arg(report, "Pull ", "cpu-host") == "tensorflow/serving:2.19.0"
    assert results(report, "Pull ")["cpu-host"]["invocation"]["module_args"]["source"] == "pull"
    assert results(report, "Report the gate's decision")["cpu-host"]["msg"] == (
        "host cpu-host has no NVIDIA GPU: the CUDA gate does not apply"
    )
    assert report["stats"]["cpu-host"]["failures"] == 0


@pytest.mark.docker
def test_gpu_host_pulls_the_gpu_tag_after_the_gate(check_run: tuple[int, Report]) -> None:
    _, report = check_run
    assert module_name_arg(report, "Pull ", "gpu-host") == "tensorflow/serving:2.19.0-gpu"
    gate = results(report, "Report the gate's decision")["gpu-host"]["msg"]
    assert gate.endswith("needs CUDA 12.2: compatible")
    shown = results(report, "Report the image")["gpu-host"]["msg"]
    assert shown.startswith("gpu-host runs tensorflow/serving:2.19.0-gpu (")


@pytest.mark.docker
def test_digest_pins_the_image_by_content(check_run: tuple[int, Report]) -> None:
    _, report = check_run
    assert module_name_arg(report, "Pull ", "digest-host") == f"{PRIVATE_REPO}@{DIGEST}"
    # No credentials were given: no login.
    assert "digest-host" not in results(report, "Log in to the registry")


@pytest.mark.docker
def test_gate_refuses_an_image_the_old_driver_cannot_run(check_run: tuple[int, Report]) -> None:
    rc, report = check_run
    assert rc == 2  # some hosts failed (this one, the bad-input ones, the missing stand-in)
    refused = results(report, "Refuse an image the driver cannot run")["old-gpu-fail"]
    assert refused["failed"] is True
    assert refused["msg"].startswith(
        "host old-gpu-fail: NVIDIA driver 396.37 supports CUDA up to 9.2, but TF Serving "
        "2.19.0's GPU image (image source 'pull') needs CUDA 12.2"
    )
    assert "cuda_gate_on_incompatible: build" in refused["msg"]
    # Refused before anything was pulled or recorded.
    assert "old-gpu-fail" not in results(report, "Pull ")
    assert "old-gpu-fail" not in results(report, "Record the image")


@pytest.mark.docker
def test_gate_switches_an_old_driver_to_a_cuda_9_build(check_run: tuple[int, Report]) -> None:
    _, report = check_run
    gate = results(report, "Report the gate's decision")["old-gpu-build"]["msg"]
    assert "switching this host to image source 'build' with CUDA 9.2" in gate
    assert "old-gpu-build" not in results(report, "Pull ")
    recipe = results(report, "Report the build recipe")["old-gpu-build"]["msg"]
    assert "builds tfs-fleet/tfserving:2.19.0-gpu-cuda9.2" in recipe
    assert "CUDA 9.2, cuDNN 7.4.1.5, Ubuntu 16.04" in recipe
    # The FROM lines come from the rendered Dockerfiles themselves.
    assert "devel stage FROM nvidia/cuda:9.2-cudnn7-devel-ubuntu16.04 AS devel" in recipe
    assert "FROM nvidia/cuda:9.2-cudnn7-runtime-ubuntu16.04" in recipe
    facts = results(report, "Publish the image facts")["old-gpu-build"]["ansible_facts"]
    assert facts["tfserving_image_ref"] == "tfs-fleet/tfserving:2.19.0-gpu-cuda9.2"
    assert facts["tfserving_image_source_effective"] == "build"
    # Check mode builds nothing.
    assert "old-gpu-build" not in results(report, "Start the build")


@pytest.mark.docker
def test_archive_already_on_the_host_ships_nothing(
    check_run: tuple[int, Report], probe_archive: tuple[Path, str]
) -> None:
    _, report = check_run
    _, image_id = probe_archive
    for task in ("Copy the archive", "Rsync the archive", "Load the archive"):
        assert "archive-host" not in results(report, task), task
    facts = results(report, "Publish the image facts")["archive-host"]["ansible_facts"]
    assert facts["tfserving_image_ref"] == PROBE
    assert facts["tfserving_image_id"] == image_id
    assert report["stats"]["archive-host"]["failures"] == 0


@pytest.mark.docker
def test_standin_on_the_host_is_used_as_it_is(check_run: tuple[int, Report]) -> None:
    _, report = check_run
    require_docker_image(STANDIN)
    facts = results(report, "Publish the image facts")["standin-host"]["ansible_facts"]
    assert facts["tfserving_image_ref"] == STANDIN
    assert facts["tfserving_image_id"] == (
        docker("image", "inspect", "--format", "{{.Id}}", STANDIN).stdout.strip()
    )
    gate = results(report, "Report the gate's decision")["standin-host"]["msg"]
    assert gate == "host standin-host has no NVIDIA GPU: the CUDA gate does not apply"


@pytest.mark.docker
def test_missing_standin_says_how_to_ship_it(check_run: tuple[int, Report]) -> None:
    _, report = check_run
    failed = results(report, "Check that the stand-in image is on the host")["standin-missing"]
    assert failed["failed"] is True
    assert "tfsf-image/absent:never is not on standin-missing" in failed["msg"]
    assert "tfserving_image_archive_path" in failed["msg"]


@pytest.mark.docker
@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("archive-no-path", ["tfserving_image_archive_path is empty", "docker save -o"]),
        ("bad-source", ["tfserving_image_source", "pull, archive, build, standin"]),
        ("bad-digest", ["tfserving_image_digest", "64 lowercase hex digits"]),
    ],
)
def test_bad_input_fails_first_naming_the_variable(
    check_run: tuple[int, Report], host: str, words: list[str]
) -> None:
    _, report = check_run
    stats = report["stats"][host]
    assert stats["failures"] == 1
    assert stats["changed"] == 0
    # Only argument validation (the role's and its tfs_fleet_defaults dependency's) may have
    # passed before the failure.
    passed = [
        task["task"]["name"]
        for play in report["plays"]
        for task in play["tasks"]
        for name, result in task["hosts"].items()
        if name == host and not result.get("failed") and not result.get("skipped")
    ]
    assert stats["ok"] == len(passed)
    assert all("Validating arguments against arg spec" in n for n in passed), passed
    failed = [
        result["msg"]
        for play in report["plays"]
        for task in play["tasks"]
        for name, result in task["hosts"].items()
        if name == host and result.get("failed")
    ]
    assert len(failed) == 1
    for word in words:
        assert word in failed[0]


PULLER = "tfsf-puller"
PASSWORD = "tfsf-S3cret-9f4b2c"
REPOSITORY = "tfsf-image/serving"


@pytest.mark.docker
def test_login_uses_the_vault_password_and_never_logs_it(tmp_path: Path) -> None:
    with real_registry(tmp_path / "registry", {PULLER: PASSWORD}) as registry:
        digest = registry.push(PROBE, REPOSITORY, "2.19.0")
        inventory = write_inventory(
            tmp_path / "hosts.yml",
            {"login-host": {"tfserving_image_repository": f"{registry.address}/{REPOSITORY}",
                            "tfserving_image_registry_url": f"http://{registry.address}",
                            "tfserving_image_digest": digest,
                            "tfserving_image_registry_username": PULLER,
                            "tfserving_image_registry_password": PASSWORD}},
        )  # fmt: skip
        proc = run_playbook(PLAYBOOKS / "role.yml", inventory, "--check", "-vvv", json_output=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout[-3000:]
    # The registry's only user is the puller, so an authorized request carried its password:
    # the role asked for the pinned manifest with it, then the engine logged in with it.
    asked = registry.authorized("Python-urllib")
    assert [e["http.request.uri"] for e in asked] == [f"/v2/{REPOSITORY}/manifests/{digest}"]
    assert any(e["http.request.uri"] == "/v2/" for e in registry.authorized("docker/"))
    assert registry.refused_users() == []
    assert f"TASK [tfserving_image : Pull {registry.address}/{REPOSITORY}@{digest}]" in output
    # ... and the password appears nowhere in the -vvv output.
    assert PASSWORD not in output
    login = output[output.index("TASK [tfserving_image : Log in to the registry]") :]
    assert login.split("TASK [", 2)[1].count("censored: 'the output has been hidden") == 1
    # Check mode stored no credentials on the host.
    config = Path.home() / ".docker" / "config.json"
    assert not config.exists() or registry.address not in config.read_text()


@pytest.fixture(scope="module")
def registry_failures(tmp_path_factory: pytest.TempPathFactory) -> tuple[Registry, Report]:
    """One check-mode run against the real registry over TLS (test CA), one host per failure,
    each with exactly one thing wrong; plus a registry stopped just before the run."""
    tmp = tmp_path_factory.mktemp("registry-failures")
    pki, stranger = make_ca(), make_ca("tfs-fleet pytest stranger CA")
    with real_registry(tmp / "stopped", {PULLER: PASSWORD}, tls=pki) as stopped:
        stopped.push(PROBE, REPOSITORY, "2.19.0")
    with real_registry(tmp / "registry", {PULLER: PASSWORD}, tls=pki) as registry:
        digest = registry.push(PROBE, REPOSITORY, "2.19.0")
        good = {"tfserving_image_repository": f"{registry.address}/{REPOSITORY}",
                "tfserving_image_digest": digest,
                "tfserving_image_registry_username": PULLER,
                "tfserving_image_registry_password": PASSWORD,
                "tfserving_image_registry_ca": pki.ca_pem}  # fmt: skip
        hosts: dict[str, dict[str, Any]] = {
            "wrong-password": good | {"tfserving_image_registry_password": "not-the-password"},
            "unknown-ca": good | {"tfserving_image_registry_ca": stranger.ca_pem},
            "no-ca": good | {"tfserving_image_registry_ca": ""},
            "missing-tag": good | {"tfserving_image_digest": "",
                                   "tfserving_image_version": "2.99.0"},
            "other-digest": good | {"tfserving_image_digest": DIGEST},
            "registry-stopped": good | {
                "tfserving_image_repository": f"{stopped.address}/{REPOSITORY}"},
        }  # fmt: skip
        inventory = write_inventory(tmp / "hosts.yml", hosts)
        proc = run_playbook(PLAYBOOKS / "role.yml", inventory, "--check")
    return registry, parse(proc)


@pytest.mark.docker
@pytest.mark.parametrize(
    ("host", "words"),
    [
        ("wrong-password", ["refused the credentials", "tfserving_image_registry_password",
                            "tfserving_image_registry_username ('tfsf-puller')"]),
        ("unknown-ca", ["is not trusted", "tfserving_image_registry_ca", "the one given is not"]),
        ("no-ca", ["is not trusted", "tfserving_image_registry_ca", "none is given"]),
        ("missing-tag", ["the tag 2.99.0 is not in", "tfserving_image_version",
                         "tfserving_image_tag"]),
        ("other-digest", [f"tfserving_image_digest {DIGEST} is not in", "pin the digest"]),
        ("registry-stopped", ["does not answer", "tfserving_image_repository"]),
    ],
)  # fmt: skip
def test_registry_failures_stop_first_naming_the_variable(
    registry_failures: tuple[Registry, Report], host: str, words: list[str]
) -> None:
    registry, report = registry_failures
    stats = report["stats"][host]
    assert (stats["failures"], stats["changed"]) == (1, 0), stats
    failed = results(report, "Stop when the registry cannot give the image")[host]
    assert failed["failed"] is True
    assert failed["msg"].startswith(f"{host}: ") and "nothing was changed" in failed["msg"]
    for word in words:
        assert word in failed["msg"], failed["msg"]
    assert PASSWORD not in failed["msg"]
    # Nothing after the registry's answer ran: no CA installed, no login, no pull, no record.
    for task in (
        "Install ",
        "Log in to the registry",
        "Pull ",
        "Record the image on the host",
    ):
        assert host not in results(report, task), task
    if host == "wrong-password":
        assert PULLER in registry.refused_users()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """Build contexts rendered for CUDA 11.8 and the seed's 9.0 (one host each), by CUDA."""
    tmp_path = tmp_path_factory.mktemp("render")
    cudas = ["11.8", "9.0"]
    hosts: dict[str, dict[str, Any]] = {
        f"cuda{cuda.replace('.', '')}": {
            "tfserving_image_build_cuda": cuda,
            "tfserving_image_build_dir": str(tmp_path / cuda),
            "tfserving_image_build_source_sha256": SOURCE_SHA256,
        }
        for cuda in cudas
    }
    proc = run_playbook(PLAYBOOKS / "render.yml", write_inventory(tmp_path / "hosts.yml", hosts))
    assert proc.returncode == 0, proc.stdout[-3000:]
    names = [
        "devel/Dockerfile",
        "runtime/Dockerfile",
        "runtime/tf_serving_entrypoint.sh",
        "build.sh",
    ]
    return {
        cuda: {name: (tmp_path / cuda / f"2.19.0-cuda{cuda}" / name).read_text() for name in names}
        for cuda in cudas
    }


def from_lines(dockerfile: str) -> list[str]:
    return [line for line in dockerfile.splitlines() if line.startswith("FROM ")]


def test_dockerfiles_for_cuda_11_8(rendered: dict[str, dict[str, str]]) -> None:
    files = rendered["11.8"]
    devel, runtime = files["devel/Dockerfile"], files["runtime/Dockerfile"]
    assert from_lines(devel) == ["FROM nvidia/cuda:11.8.0-cudnn8-devel-ubuntu22.04 AS devel"]
    assert "libcudnn8=8.6.0.163-1+cuda11.8" in devel
    assert "libcudnn8-dev=8.6.0.163-1+cuda11.8" in devel
    assert "TF_CUDA_VERSION=11.8" in devel
    assert "TF_CUDNN_VERSION=8" in devel
    assert "https://github.com/tensorflow/serving/archive/refs/tags/2.19.0.tar.gz" in devel
    assert "tensorflow_serving/model_servers:tensorflow_model_server" in devel
    assert "/usr/local/bin/tensorflow_model_server" in devel
    assert from_lines(runtime) == [
        "FROM ${TF_SERVING_BUILD_IMAGE} AS build_image",
        "FROM nvidia/cuda:11.8.0-cudnn8-runtime-ubuntu22.04",
    ]
    assert "ARG TF_SERVING_BUILD_IMAGE=tfs-fleet/tfserving:2.19.0-devel-gpu-cuda11.8" in runtime
    assert (
        "COPY --from=build_image /usr/local/bin/tensorflow_model_server "
        "/usr/bin/tensorflow_model_server" in runtime
    )
    assert 'ENTRYPOINT ["/usr/bin/tf_serving_entrypoint.sh"]' in runtime
    assert "EXPOSE 8500 8501" in runtime
    entry = files["runtime/tf_serving_entrypoint.sh"]
    assert "--port=8500 --rest_api_port=8501" in entry
    assert '--model_base_path="${MODEL_BASE_PATH}/${MODEL_NAME}" "$@"' in entry
    script = files["build.sh"]
    assert "--tag tfs-fleet/tfserving:2.19.0-devel-gpu-cuda11.8 devel" in script
    assert "--tag tfs-fleet/tfserving:2.19.0-gpu-cuda11.8 runtime" in script
    assert script.index(" devel\n") < script.index(" runtime\n")  # devel stage first


def test_dockerfiles_for_the_seeds_cuda_9_0(rendered: dict[str, dict[str, str]]) -> None:
    files = rendered["9.0"]
    devel, runtime = files["devel/Dockerfile"], files["runtime/Dockerfile"]
    # The seed's base: nvidia/cuda 9.0 on Ubuntu 16.04 with cuDNN 7.4.1.5.
    assert from_lines(devel) == ["FROM nvidia/cuda:9.0-cudnn7-devel-ubuntu16.04 AS devel"]
    assert "CUDNN_VERSION=7.4.1.5" in devel
    assert "libcudnn7=7.4.1.5-1+cuda9.0" in devel
    assert "TF_CUDA_VERSION=9.0" in devel
    assert from_lines(runtime)[-1] == "FROM nvidia/cuda:9.0-cudnn7-runtime-ubuntu16.04"
    assert "ARG TF_SERVING_BUILD_IMAGE=tfs-fleet/tfserving:2.19.0-devel-gpu-cuda9.0" in runtime
    assert "libcudnn7=7.4.1.5-1+cuda9.0" in runtime
    assert "COPY --from=build_image /usr/local/bin/tensorflow_model_server" in runtime
