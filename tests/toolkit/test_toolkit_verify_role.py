"""The tfserving_verify role end to end on the controller, against the scripted TF Serving double
(no container, no TensorFlow model): model_sources finds the versions (``001`` is version 1),
smoke_plan passes --saved-model, --previous-saved-model and the entry's golden file, the table
is printed and a failing host fails with every failed check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from toolkit_fake_serving import MNIST, FakeServing, write_saved_model

from helpers import ansible_playbook

pytestmark = pytest.mark.slow  # ansible-playbook runs (seconds each)

GOLDEN_OK = {
    "requests": [
        {"method": "classify", "examples": [{"x": 1.0}], "results": [[["0", 0.25], ["1", 0.75]]]}
    ]
}


def play(
    tmp_path: Path, fake: FakeServing, golden: str | None, **play_vars: Any
) -> tuple[Path, Path]:
    entry: dict[str, Any] = {"name": "mnist"}
    if golden is not None:
        entry["golden"] = golden
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "all": {
                    "hosts": {
                        "h1": {
                            "ansible_connection": "local",
                            "tfserving_verify_grpc_endpoint": fake.grpc_target,
                            "tfserving_verify_rest_endpoint": f"127.0.0.1:{fake.rest_port}",
                        }
                    }
                }
            }
        )
    )
    playbook = tmp_path / "verify.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "hosts": "all",
                    "gather_facts": False,
                    "vars": {
                        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                        "tfserving_models_list": [entry],
                        "tfserving_verify_export_base": str(tmp_path / "base"),
                        "tfserving_verify_wait_seconds": 5,
                        "tfserving_verify_repeat": 2,
                        **play_vars,
                    },
                    "roles": [{"role": "tfserving_verify"}],
                }
            ]
        )
    )
    return playbook, inventory


@pytest.fixture
def base(tmp_path: Path) -> Path:
    write_saved_model(tmp_path / "base" / "mnist" / "001", MNIST)
    write_saved_model(tmp_path / "base" / "mnist" / "2", MNIST, text=True)
    (tmp_path / "base" / "mnist" / "golden.json").write_text(json.dumps(GOLDEN_OK))
    return tmp_path / "base"


def test_the_role_verifies_a_model_with_its_golden_file(tmp_path: Path, base: Path) -> None:
    with FakeServing(MNIST, model="mnist", version=2) as fake:
        proc = ansible_playbook(*play(tmp_path, fake, "golden.json"), timeout=300)
        classify = fake.calls_of("Classify")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    out = " ".join(proc.stdout.split())  # the YAML callback folds long lines
    assert "mnist v2 + golden" in out
    assert "all 2 of the previous version 1 still served" in out  # 001 was found as 1
    assert "predict serving_default PASS not built" in out and "golden PASS 1 request" in out
    assert len(classify) == 2  # --repeat 2 of the one golden classify request


def test_a_wrong_golden_answer_fails_the_host(tmp_path: Path, base: Path) -> None:
    wrong = {"requests": [{**GOLDEN_OK["requests"][0], "results": [[["0", 0.5], ["1", 0.5]]]}]}
    (base / "checks.json").write_text(json.dumps(wrong))
    with FakeServing(MNIST, model="mnist", version=2) as fake:
        proc = ansible_playbook(*play(tmp_path, fake, str(base / "checks.json")), timeout=300)
    assert proc.returncode != 0
    out = " ".join((proc.stdout + proc.stderr).split())
    assert "h1 (127.0.0.1:" in out and "failed the smoke test" in out
    assert "mnist: golden: --golden" in out
    assert "example 1 scores differs from the expected output" in out


def test_a_missing_golden_file_fails_before_any_request(tmp_path: Path, base: Path) -> None:
    with FakeServing(MNIST, model="mnist", version=2) as fake:
        proc = ansible_playbook(*play(tmp_path, fake, "nope.json"), timeout=300)
        assert fake.calls == []
    assert proc.returncode != 0
    assert (
        f"tfserving_models_list entry 'mnist': golden file {base}/mnist/nope.json does not exist"
    ) in " ".join((proc.stdout + proc.stderr).split())


def test_the_override_wait_beats_an_extra_var_of_the_wait(tmp_path: Path, base: Path) -> None:
    """The rollout's rollback passes its wait as tfserving_verify_wait_seconds_override: an extra
    var -e tfserving_verify_wait_seconds (a short gate wait) must not shorten it. The host serves
    version 1 where 2 is the newest export, so the check fails after exactly the wait it used."""
    with FakeServing(MNIST, model="mnist", version=1) as fake:
        overridden = ansible_playbook(
            *play(tmp_path, fake, None, tfserving_verify_wait_seconds_override=3),
            "-e", "tfserving_verify_wait_seconds=1", timeout=300,
        )  # fmt: skip
        plain = ansible_playbook(
            *play(tmp_path, fake, None), "-e", "tfserving_verify_wait_seconds=1", timeout=300
        )
    assert overridden.returncode != 0 and plain.returncode != 0
    for proc, wait in ((overridden, 3), (plain, 1)):
        assert f"not AVAILABLE after {wait} s" in " ".join(proc.stdout.split()), proc.stdout[-3000:]
