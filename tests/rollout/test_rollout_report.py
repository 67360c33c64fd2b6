"""tfs_fleet.rollout_report and scripts/rollout_report.py: merge host records into the report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tfs_fleet.rollout_report import ReportError, build_report, format_table, write_report

REPO = Path(__file__).resolve().parents[2]


def record(host: str, status: str, **extra: object) -> dict[str, object]:
    return {
        "host": host,
        "status": status,
        "gate": "passed" if status == "updated" else "failed",
        "before": {"image_id": "sha256:" + "a" * 64, "models": {"m": [1]}},
        "after": {"image_id": "sha256:" + "b" * 64, "models": {"m": [1, 2]}},
        "timings_s": {"update": 3.14159, "gate": 1.0, "total": 4.2},
        **extra,
    }


def write_records(run_dir: Path, *records: dict[str, object]) -> None:
    (run_dir / "hosts").mkdir(parents=True)
    for rec in records:
        (run_dir / "hosts" / f"{rec['host']}.json").write_text(json.dumps(rec))


def test_hosts_keep_rollout_order_and_missing_or_unfinished_hosts_are_named() -> None:
    records = {
        "b": record("b", "updated"),
        "a": record("a", "started"),
        "z": record("z", "unchanged"),
    }
    report = build_report("r1", ["b", "a", "c"], records)
    assert [e["host"] for e in report["hosts"]] == ["b", "a", "c", "z"]
    assert [e["status"] for e in report["hosts"]] == [
        "updated",
        "interrupted",
        "not-reached",
        "unchanged",
    ]
    assert report["ok"] is False
    assert report["counts"] == {"updated": 1, "interrupted": 1, "not-reached": 1, "unchanged": 1}


def test_ok_only_when_every_host_updated_or_unchanged() -> None:
    assert build_report(
        "r", ["a", "b"], {"a": record("a", "updated"), "b": record("b", "unchanged")}
    )["ok"]
    assert not build_report("r", ["a"], {"a": record("a", "rolled-back")})["ok"]


def test_table_shows_images_versions_gate_timings_and_details() -> None:
    report = build_report(
        "r2", ["h1"], {"h1": record("h1", "rolled-back", detail="gate failed: predict")}
    )
    table = format_table(report)
    lines = table.splitlines()
    assert lines[0] == "rollout r2: NOT OK"
    assert lines[1].split()[:3] == ["HOST", "STATUS", "GATE"]
    assert lines[2].split() == [
        "h1", "rolled-back", "failed", "a" * 12, "b" * 12, "m:1", "m:1,2", "3.1", "1.0", "4.2",
    ]  # fmt: skip
    assert lines[3] == "h1: gate failed: predict"


def test_write_report_writes_json_and_table(tmp_path: Path) -> None:
    write_records(tmp_path, record("h1", "updated"))
    report = write_report(tmp_path, "r3", ["h1", "h2"])
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert (tmp_path / "report.txt").read_text() == format_table(report)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


def test_unreadable_record_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "hosts").mkdir()
    (tmp_path / "hosts" / "h1.json").write_text("{not json")
    with pytest.raises(ReportError, match=r"h1\.json: not a readable rollout record"):
        write_report(tmp_path, "r4", ["h1"])
    (tmp_path / "hosts" / "h1.json").write_text("[1]")
    with pytest.raises(ReportError, match="not a rollout record"):
        write_report(tmp_path, "r4", ["h1"])


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    script = REPO / "scripts" / "rollout_report.py"
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True)


def test_cli_prints_the_table_and_strict_exit_codes(tmp_path: Path) -> None:
    write_records(tmp_path, record("h1", "updated"), record("h2", "skipped"))
    args = ["--run-dir", str(tmp_path), "--run-id", "r5", "--host", "h1", "--host", "h2"]
    plain = run_cli(*args, "--print")
    assert plain.returncode == 0 and plain.stdout.startswith("rollout r5: NOT OK")
    assert run_cli(*args, "--strict").returncode == 1
    (tmp_path / "hosts" / "h2.json").write_text("{")
    broken = run_cli(*args)
    assert broken.returncode == 2 and "h2.json" in broken.stderr


def test_cli_writes_the_host_record_from_stdin_then_the_report(tmp_path: Path) -> None:
    args = ["--run-dir", str(tmp_path), "--run-id", "r6", "--host", "h1", "--host", "h2"]
    script = REPO / "scripts" / "rollout_report.py"

    def with_stdin(text: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), *args, "--record-stdin"],
            input=text, capture_output=True, text=True,
        )  # fmt: skip

    first = with_stdin(json.dumps(record("h1", "updated")))
    assert first.returncode == 0, first.stderr
    assert json.loads((tmp_path / "hosts" / "h1.json").read_text())["status"] == "updated"
    report = json.loads((tmp_path / "report.json").read_text())
    assert [h["status"] for h in report["hosts"]] == ["updated", "not-reached"]
    for bad, why in [("{", "not JSON"), ('{"status": "x"}', "names no host"),
                     ('{"host": "../x"}', "names no host")]:  # fmt: skip
        out = with_stdin(bad)
        assert out.returncode == 2 and why in out.stderr, out.stderr
    assert sorted(p.name for p in (tmp_path / "hosts").iterdir()) == ["h1.json"]


def test_cli_help_documents_exit_codes() -> None:
    out = run_cli("--help")
    assert out.returncode == 0 and "exit status" in out.stdout and "--strict" in out.stdout
