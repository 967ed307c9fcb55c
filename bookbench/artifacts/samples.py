"""The raw-sample file format (versioned) and a writer cheap enough to sit in Locust's request hook.

One row per request, unrounded. The file is gzip-compressed CSV written as a series of gzip members, one per
flush: every completed flush stays readable even if the process is killed mid-run (readers that handle
multi-member gzip, such as Python's gzip module and pandas, read them as one file).
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Sequence
from pathlib import Path

# 2: `intended`, the open model's intended send time (empty in the closed model); readers accept 1 (no column)
SAMPLES_FORMAT_VERSION = 2
COLUMNS = ("ts", "latency_ms", "name", "method", "status", "ok", "error", "bytes", "users", "worker", "intended")

Sample = tuple[float, float, str, str, int, int, str, int, int, str, float | None]


class SampleWriter:
    """Buffers rows in memory and appends them to the file as one gzip member per flush."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: list[Sample] = []
        self.written = 0
        if not self.path.exists():
            self._append_member([COLUMNS])

    def add(self, row: Sample) -> None:
        self.rows.append(row)

    def extend(self, rows: list[Sample]) -> None:
        self.rows.extend(rows)

    def flush(self) -> int:
        if not self.rows:
            return 0
        rows, self.rows = self.rows, []
        self._append_member(rows)
        self.written += len(rows)
        return len(rows)

    def _append_member(self, rows: Sequence[Sequence[object]]) -> None:
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows(rows)
        # compresslevel 1: the file is read once by the analysis; the recording must stay nearly free
        data = gzip.compress(buf.getvalue().encode(), compresslevel=1)
        with self.path.open("ab") as fh:
            fh.write(data)


def read_text(path: Path) -> str:
    """The file's CSV text; a last member cut short by a killed process is dropped, the rest is kept."""
    chunks: list[str] = []
    with gzip.open(path, "rt", newline="") as fh:
        try:
            for line in fh:
                chunks.append(line)
        except (EOFError, gzip.BadGzipFile):
            # keep only complete lines from the members that were written whole
            if chunks and not chunks[-1].endswith("\n"):
                chunks.pop()
    return "".join(chunks)


def read_rows(path: Path) -> list[dict[str, str]]:
    """All rows of a samples file as dicts (for tests and small files)."""
    return list(csv.DictReader(io.StringIO(read_text(path))))
