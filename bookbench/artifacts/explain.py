"""explain/<query>.json: one statement's SQL, its EXPLAIN (ANALYZE, BUFFERS) plan and the facts compared across sets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bookbench.artifacts.files import write_json


def write(explain_dir: Path, name: str, sql: str, plan: list[dict[str, Any]], summary: dict[str, Any]) -> Path:
    """The statement's SQL is stored on one line (whitespace collapsed) so the file reads as data, not layout."""
    explain_dir.mkdir(parents=True, exist_ok=True)
    path = explain_dir / f"{name}.json"
    write_json(path, {"sql": " ".join(sql.split()), "plan": plan, "summary": summary})
    return path
