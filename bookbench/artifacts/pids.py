"""pids.json: the processes a run started (its owner and children), read back by a later command to stop leftovers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bookbench.artifacts.files import write_json

PIDS_FILE = "pids.json"


def read(folder: Path) -> dict[str, Any]:
    """The folder's record, or {} when there is none or it cannot be read: a missing record means nothing to stop."""
    try:
        data = json.loads((folder / PIDS_FILE).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def write(folder: Path, data: dict[str, Any]) -> None:
    write_json(folder / PIDS_FILE, data)


def folders_with_record(results_dir: Path) -> list[Path]:
    """Every run folder under `results_dir` that holds a record, in name order (oldest run first)."""
    return [p.parent for p in sorted(results_dir.glob(f"*/{PIDS_FILE}"))]
