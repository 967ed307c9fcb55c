"""`bookbench export RUN --csv`: format-3 samples back as format 2's CSV.gz, row for row; a missing run or scenario
is a usage error naming it."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from bookbench.artifacts.sample_parts import PartWriter
from bookbench.artifacts.samples import COLUMNS, read_rows
from bookbench.cli.app import app

KNOWN = Path(__file__).resolve().parents[1] / "data" / "known_run"


def test_export_writes_format_2_csv_row_for_row(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(KNOWN, run)
    rows = [(1_700_000_000.0 + i / 8, 2.5 + i, "book", "POST", 200, int(i != 3), "" if i != 3 else 'HTTP 500: "x", y',
             120, 4, "w1", None if i % 2 else 1_700_000_000.0 + i / 8 - 0.001) for i in range(10)]
    for process, part in (("w1", rows[:6]), ("w2", rows[6:])):
        writer = PartWriter(run / "samples" / "known", process)
        writer.extend(part)
        writer.flush()
    result = CliRunner().invoke(app, ["export", str(run), "--csv", "--scenario", "known", "--out", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    assert "known: 10 rows" in result.output
    got = read_rows(tmp_path / "x" / "known.csv.gz")
    assert list(got[0]) == list(COLUMNS)
    assert [(float(r["ts"]), float(r["latency_ms"]), r["error"], r["ok"], r["intended"]) for r in got] == [
        (r[0], r[1], r[6], str(r[5]), "" if r[10] is None else repr(r[10])) for r in rows]


def test_export_names_a_missing_run_or_scenario(tmp_path: Path) -> None:
    missing = CliRunner().invoke(app, ["export", str(tmp_path / "nope"), "--csv"])
    assert missing.exit_code == 2 and "is not a run folder" in " ".join(missing.output.split())
    run = tmp_path / "run"
    shutil.copytree(KNOWN, run)
    unknown = CliRunner().invoke(app, ["export", str(run), "--scenario", "other"])
    assert unknown.exit_code == 2 and "--scenario other: not a scenario of" in " ".join(unknown.output.split())


def test_export_names_a_cut_file_and_exports_the_whole_ones(tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(KNOWN, run)
    row = (1_700_000_000.0, 2.5, "book", "POST", 200, 1, "", 120, 4, "w1", None)
    for process in ("w1", "w2"):
        writer = PartWriter(run / "samples" / "known", process)
        writer.extend([row] * 5)
        writer.flush()
    cut = sorted((run / "samples" / "known").glob("w2-*.parquet"))[0]
    cut.write_bytes(cut.read_bytes()[:40])  # a file cut short on disk: not Parquet any more
    result = CliRunner().invoke(app, ["export", str(run), "--scenario", "known", "--out", str(tmp_path / "x")])
    out = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "samples damaged" in out and cut.name in out and "known: 5 rows" in out
    assert len(read_rows(tmp_path / "x" / "known.csv.gz")) == 5  # w1's five rows, w2's cut file left out
