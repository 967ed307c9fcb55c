"""HTML pages of run and result folders (report, review, compare, sweep, capacity), written whole."""

from __future__ import annotations

from pathlib import Path

from bookbench.artifacts.files import write_file


def write(path: Path, html: str) -> Path:
    """Atomic, so a browser reloading a page while `bookbench report` re-renders it never shows half of one."""
    write_file(path, html)
    return path
