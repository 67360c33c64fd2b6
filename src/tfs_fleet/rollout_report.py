"""The rollout report: per-host records written by playbooks/rollout.yml, merged into one JSON
document and a readable table.

Each host of a rollout writes ``<run dir>/hosts/<host>.json`` on the controller (image and model
versions before and after, gate result, rollback, timings). ``build_report`` merges them, in
rollout order, with a line for every host the rollout did not reach; ``write_report`` writes
``report.json`` and ``report.txt`` atomically. No TensorFlow import.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

REPORT_FORMAT = 1
# Statuses a host record can carry, and what the table prints for a host without a record.
STATUS_NOT_REACHED = "not-reached"
STATUS_INTERRUPTED = "interrupted"
FINAL_STATUSES = (
    "updated",
    "unchanged",
    "rolled-back",
    "rollback-failed",
    "skipped",
    "unreachable",
)


class ReportError(RuntimeError):
    """A record that cannot be read or is not a rollout record."""


def load_records(hosts_dir: Path) -> dict[str, dict[str, Any]]:
    """Read every ``<host>.json`` under hosts_dir; a missing directory means no record yet."""
    records: dict[str, dict[str, Any]] = {}
    if not hosts_dir.is_dir():
        return records
    for path in sorted(hosts_dir.glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ReportError(f"{path}: not a readable rollout record ({exc})") from exc
        if not isinstance(record, dict) or "host" not in record:
            raise ReportError(f"{path}: not a rollout record (no 'host' key)")
        records[str(record["host"])] = record
    return records


def _host_entry(host: str, record: Mapping[str, Any] | None) -> dict[str, Any]:
    if record is None:
        return {"host": host, "status": STATUS_NOT_REACHED}
    entry = dict(record)
    if entry.get("status") not in FINAL_STATUSES:
        # The host started its update but never wrote its final record: lost mid-update
        # (unreachable) or the run was killed.
        entry["status"] = STATUS_INTERRUPTED
    return entry


def build_report(
    run_id: str, hosts: Sequence[str], records: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """One document for the run: the hosts in rollout order, then records of other hosts."""
    ordered = list(hosts) + sorted(set(records) - set(hosts))
    entries = [_host_entry(host, records.get(host)) for host in ordered]
    counts: dict[str, int] = {}
    for entry in entries:
        counts[entry["status"]] = counts.get(entry["status"], 0) + 1
    ok = all(entry["status"] in ("updated", "unchanged") for entry in entries)
    return {"format": REPORT_FORMAT, "run_id": run_id, "ok": ok, "counts": counts, "hosts": entries}


def _image_label(side: Mapping[str, Any] | None) -> str:
    if not side:
        return "-"
    image_id = str(side.get("image_id") or "")
    short = image_id.removeprefix("sha256:")[:12]
    return short or str(side.get("image") or "-")


def _models_label(side: Mapping[str, Any] | None) -> str:
    if not side:
        return "-"
    models = side.get("models") or {}
    parts = [
        f"{name}:{','.join(str(v) for v in versions)}" for name, versions in sorted(models.items())
    ]
    return " ".join(parts) or "-"


def _seconds(entry: Mapping[str, Any], key: str) -> str:
    value = (entry.get("timings_s") or {}).get(key)
    return "-" if value is None else f"{float(value):.1f}"


COLUMNS = ("HOST", "STATUS", "GATE", "IMAGE BEFORE", "IMAGE AFTER", "MODELS BEFORE", "MODELS AFTER")
TIMING_COLUMNS = ("UPDATE_S", "GATE_S", "TOTAL_S")


def table_rows(report: Mapping[str, Any]) -> list[list[str]]:
    rows = []
    for entry in report["hosts"]:
        before, after = entry.get("before"), entry.get("after")
        rows.append(
            [
                entry["host"],
                entry["status"],
                str(entry.get("gate") or "-"),
                _image_label(before),
                _image_label(after),
                _models_label(before),
                _models_label(after),
                _seconds(entry, "update"),
                _seconds(entry, "gate"),
                _seconds(entry, "total"),
            ]
        )
    return rows


def format_table(report: Mapping[str, Any]) -> str:
    """A fixed-width table, one line per host, then the failure details."""
    header = list(COLUMNS + TIMING_COLUMNS)
    rows = table_rows(report)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [f"rollout {report['run_id']}: {'OK' if report['ok'] else 'NOT OK'}"]
    for row in [header, *rows]:
        lines.append(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    for entry in report["hosts"]:
        if entry.get("detail"):
            lines.append(f"{entry['host']}: {entry['detail']}")
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_host_record(run_dir: Path, text: str) -> str:
    """Write one host's line of the run (a JSON object with its `host`) to
    run_dir/hosts/<host>.json, atomically; returns the host."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(f"the host record is not JSON ({exc})") from exc
    host = record.get("host") if isinstance(record, dict) else None
    if not isinstance(host, str) or not host or "/" in host or host.startswith("."):
        raise ReportError("the host record names no host (a 'host' key with a host name)")
    _atomic_write(run_dir / "hosts" / f"{host}.json", json.dumps(record, indent=4) + "\n")
    return host


def write_report(run_dir: Path, run_id: str, hosts: Sequence[str]) -> dict[str, Any]:
    """Merge run_dir/hosts/*.json into run_dir/report.json and run_dir/report.txt."""
    report = build_report(run_id, hosts, load_records(run_dir / "hosts"))
    _atomic_write(run_dir / "report.json", json.dumps(report, indent=1, sort_keys=True) + "\n")
    _atomic_write(run_dir / "report.txt", format_table(report))
    return report
