"""A new run's samples (format 3: samples/<scenario>/*.parquet) as tests read them: format 2's read_rows() shape, one
dict of strings per row, so a check written against the CSV reads the same here."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from bookbench.artifacts import sample_parts


def rows(run_dir: Path, scenario: str) -> list[dict[str, str]]:
    """Every row of the scenario's whole samples files, in file order; strings as the CSV held them ("" for null)."""
    out: list[dict[str, str]] = []
    for path in sample_parts.files(run_dir / "samples" / scenario):
        for record in pq.read_table(path).to_pylist():
            out.append({k: "" if v is None else str(v) for k, v in record.items()})
    return out


def recorded(run_dir: Path, scenario: str) -> bool:
    """Whether the scenario has written a whole samples file yet (a part is renamed in only when whole): what a test
    waits for before it interrupts a run in the middle of its load."""
    return bool(sample_parts.files(run_dir / "samples" / scenario))
