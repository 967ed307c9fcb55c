"""logs/progress_<scenario>.json: the load side's live figures, rewritten once a second, read by the progress line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bookbench.artifacts.files import replace_atomically


def write(path: Path, fields: dict[str, Any]) -> None:
    """Replace the file whole (a reader never sees half of it); raises OSError, leaving no temp file, because a
    display file that cannot be written is the caller's to ignore: the samples' next flush names a full disk."""
    replace_atomically(path, json.dumps(fields))


def read(path: Path) -> dict[str, Any] | None:
    """The latest figures, or None before the first write or when the file is unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
