"""A scenario's samples found, checked and opened for the engine: format 3 (a folder of Parquet files) or format 1/2
(one multi-member gzip CSV, whose bad rows are named and left out), both as one `Samples` view."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow.parquet as pq

from bookbench.analysis.sample_scan import Samples
from bookbench.artifacts import sample_parts
from bookbench.artifacts.manifest import ScenarioEntry
from bookbench.artifacts.samples import COLUMNS, check, read_text
from bookbench.artifacts.summary import SamplesFile

if TYPE_CHECKING:  # imported where a format-1/2 file is read: format 3 never needs it
    import pandas as pd

# numeric columns every row must hold: a finite number, never negative (a latency of -5 ms is no measurement)
NUMERIC = ("ts", "latency_ms", "status", "ok", "bytes", "users")


def load_samples(path: Path) -> pd.DataFrame:
    """Every readable row of a samples file (format 1/2) or folder (format 3) as a frame with `end` (tests, tools;
    a run's analysis goes through load_checked() and never holds the rows)."""

    if path.is_dir():
        paths = sample_parts.files(path)
        if not paths:
            return _frame("", str(path))[0]
        df: pd.DataFrame = pq.ParquetDataset(paths).read().to_pandas()
        for col in ("name", "method", "error", "worker"):
            df[col] = df[col].astype(str)
        df["end"] = df["ts"] + df["latency_ms"] / 1000.0
        return df
    return _frame(read_text(path) if path.exists() else "", str(path))[0]


def _frame(text: str, rel: str) -> tuple[pd.DataFrame, str | None]:
    """Format 1/2: the rows as a frame, and what is wrong with the file (the first bad row, by file and line) or
    None. Bad rows are left out, so the page still shows the rest; the file is then judged damaged."""
    import pandas as pd

    empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS})
    if not text.strip():
        return empty, None
    try:
        df = pd.read_csv(io.StringIO(text), dtype={"name": str, "method": str, "error": str, "worker": str},
                         keep_default_na=False, skip_blank_lines=False)
    except (pd.errors.ParserError, ValueError) as exc:
        return empty, f"{rel}: not a samples CSV ({' '.join(str(exc).split())})"
    missing = [c for c in NUMERIC if c not in df]
    if missing:
        return empty, f"{rel}: no column {', '.join(missing)} in its header"
    bad = np.zeros(len(df), dtype=bool)
    first: tuple[int, str, str] | None = None  # (row, column, why)
    for col in NUMERIC:
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            wrong = ~np.isfinite(values) | (values < 0)
        if wrong.any():
            row = int(np.argmax(wrong))
            if first is None or row < first[0]:
                why = ("is negative" if values[row] < 0 else "is not a finite number" if not np.isnan(values[row])
                       or str(df[col].iloc[row]).strip().lower() == "nan" else "is not a number")
                first = (row, col, why)
            bad |= wrong
        df[col] = values
    problem = None
    if first is not None:
        row, col, why = first
        # line 1 is the header; the raw text is quoted as the file has it, not as pandas parsed it
        raw = next(csv.reader([text.split("\n")[row + 1]]), [])
        cell = raw[list(df.columns).index(col)] if len(raw) > list(df.columns).index(col) else ""
        more = int(bad.sum()) - 1
        problem = f"{rel} line {row + 2}: {col} \"{cell}\" {why}" + (f" ({more:,} more bad row(s))" if more else "")
        df = df[~bad].reset_index(drop=True)
    for col in ("status", "ok", "bytes", "users"):
        df[col] = df[col].astype("int64")
    df["end"] = df["ts"] + df["latency_ms"] / 1000.0
    # open model: when the request was meant to start (NaN in the closed model and in format-1 files)
    df["intended"] = pd.to_numeric(df["intended"], errors="coerce") if "intended" in df else np.nan
    return df, problem


def _columnar(run_dir: Path, name: str, entry: ScenarioEntry) -> str | None:
    """The scenario's format-3 folder (relative to the run folder), or None for format 1/2."""
    rel = entry.samples_file or f"samples/{name}"
    if entry.samples_files is not None or (run_dir / rel).is_dir():
        return rel
    return None


def open_samples(run_dir: Path, name: str, entry: ScenarioEntry) -> Samples:
    """A scenario's readable samples, unchecked (the summary already judged them: comparisons read them again)."""
    folder = _columnar(run_dir, name, entry)
    if folder is not None:
        return Samples.from_files(sample_parts.files(run_dir / folder))
    return Samples.from_frame(load_samples(run_dir / (entry.samples_file or f"samples/{name}.csv.gz")))


def load_checked(run_dir: Path, name: str, entry: ScenarioEntry) -> tuple[Samples, SamplesFile | None]:
    """A scenario's samples and the summary's `samples_file`, checked against what the manifest recorded when they
    were closed (format 3: every sealed file's rows and sha256; format 1/2: the file's rows and sha256). A missing,
    truncated, altered or ill-formed file is "damaged" (the judge's verdict: NO-GO); a run folder that recorded
    nothing to check against reads as "not verified"."""
    folder = _columnar(run_dir, name, entry)
    if folder is not None:
        paths, status, detail, rows = sample_parts.verify(run_dir, folder, entry.samples_files)
        return Samples.from_files(paths), SamplesFile(path=folder, status=status,  # type: ignore[arg-type]
                                                      detail=detail, rows=rows)
    rel = entry.samples_file or f"samples/{name}.csv.gz"
    path = run_dir / rel
    if entry.samples_file is None and not path.exists():
        return Samples.from_frame(_frame("", rel)[0]), None  # never written: a scenario that did not run
    recorded = entry.counts.samples if entry.counts is not None and entry.samples_sha256 is not None else None
    found = check(path, rel, recorded, entry.samples_sha256)
    df, bad_row = _frame(found.text, rel)
    status, detail = ("damaged", bad_row) if bad_row and found.status != "damaged" else (found.status, found.detail)
    return Samples.from_frame(df), SamplesFile.model_validate({"path": rel, "status": status, "detail": detail,
                                                                "rows": found.rows})
