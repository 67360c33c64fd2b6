"""results.json and the markdown table docs/bench.md carries between its markers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from tfs_bench.figures import Figure

BEGIN = "<!-- bench:results:begin -->"
END = "<!-- bench:results:end -->"


def results(figures: Iterable[Figure], meta: Mapping[str, Any]) -> dict[str, Any]:
    return {"meta": dict(meta), "figures": {f.name: f.as_dict() for f in figures}}


def write_json(path: Path, data: Mapping[str, Any]) -> Path:
    """Write data as JSON atomically (a temporary file beside it, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def format_value(figure: Figure) -> str:
    if figure.value is None:
        return "-"
    if figure.spec.units in ("requests", "bytes"):
        return f"{figure.value:.0f}"
    return f"{figure.value:.3f}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_table(figures: Iterable[Figure]) -> str:
    rows = [
        "| Figure | Value | Units | Goal | Met | Status |",
        "|---|---|---|---|---|---|",
    ]
    for fig in figures:
        goal = "-" if fig.spec.goal is None else str(fig.spec.goal)
        met = "-" if fig.value is None else ("yes" if fig.met else "**no**")
        rows.append(
            f"| `{fig.name}` | {format_value(fig)} | {fig.spec.units} | {_cell(goal)} | {met} "
            f"| {_cell(fig.status)} |"
        )
    return "\n".join(rows) + "\n"


def replace_between_markers(text: str, block: str, begin: str = BEGIN, end: str = END) -> str:
    """text with everything between the begin and end marker lines replaced by block."""
    start = text.find(begin)
    stop = text.find(end, start + len(begin)) if start >= 0 else -1
    if start < 0 or stop < 0:
        raise ValueError(f"markers {begin!r} ... {end!r} not found (in this order)")
    body = block if block.endswith("\n") else block + "\n"
    return text[: start + len(begin)] + "\n" + body + text[stop:]


def new_doc(path: Path, title: str) -> None:
    """A markdown file at path that has only a title and the markers (update_doc fills them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {title}\n\n{BEGIN}\n{END}\n")


def update_doc(path: Path, block: str) -> None:
    """Replace the block between the markers of the file at path (ValueError when the file or
    its markers are missing)."""
    if not path.is_file():
        raise ValueError(f"{path}: no such file (it must carry the markers {BEGIN} ... {END})")
    text = path.read_text()
    new = replace_between_markers(text, block)
    if new != text:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(new)
        os.replace(tmp, path)
