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


def recording(out: Path, scenario: str) -> list[Path]:
    """The run folders under `out` whose `scenario` has written a whole samples file."""
    return sorted(run for run in out.glob("*") if recorded(run, scenario))


def recorded_any(run_dir: Path) -> bool:
    """Whether any scenario of the run has written a whole samples file yet."""
    return any(recorded(run_dir, folder.name) for folder in (run_dir / "samples").glob("*") if folder.is_dir())
