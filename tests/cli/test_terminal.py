"""What a reader sees on an 80-column terminal: help without type noise, whole index names, the end table."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bookbench.analysis.judge import judge
from bookbench.artifacts import summary as summary_file
from bookbench.artifacts.manifest import read as read_manifest
from bookbench.cli.terminal import summary_table
from bookbench.db import indexes
from bookbench.db.conn import run_with

DATA = Path(__file__).resolve().parents[1] / "data"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb"}
    return subprocess.run([sys.executable, "-m", "bookbench", *args], capture_output=True, text=True, timeout=120,
                          env=env)


def test_help_shows_no_bool_type_and_every_dataset_option_is_explained() -> None:
    from bookbench.cli.common import DATASET_HELP

    out = _cli("run", "--help").stdout
    assert "<bool>" not in out and "--quick" in out
    for option, text in DATASET_HELP.items():
        line = next(ln for ln in out.splitlines() if f"--{option.replace('_', '-')} " in ln)
        assert text.split()[0] in line, f"--{option} has no help: {line!r}"


def test_index_status_keeps_whole_names_at_80_columns(new_db: Callable[[], str]) -> None:
    from tests.conftest import seeded

    dsn = seeded(new_db())
    run_with(dsn, lambda c: indexes.apply(c, "seed"))
    done = _cli("indexes", "status", "--dsn", dsn)
    assert done.returncode == 0, done.stderr
    names = {s.name for s in run_with(dsn, indexes.status)}
    assert len(names) == 7
    for name in names:
        assert name in done.stdout, f"{name} cut:\n{done.stdout}"
    assert max(len(line) for line in done.stdout.splitlines()) <= 80


def test_end_table_holds_every_scenario_and_endpoint_with_the_reports_figures(tmp_path: Path) -> None:
    from rich.console import Console

    from bookbench.pipeline.analyse import report

    run = tmp_path / "known_run"
    shutil.copytree(DATA / "known_run", run)
    report(run)
    summary = summary_file.read(run)
    j = judge(read_manifest(run), summary, None, None)
    console = Console(width=80, record=True, color_system=None)
    console.print(summary_table(summary, j))
    text = console.export_text()
    for name, sc in summary["scenarios"].items():
        row = next(ln for ln in text.splitlines() if ln.split()[:1] == [name])
        assert f"{sc['requests']:,}" in row and f"{sc['latency_ms']['p95']:,.1f}" in row
        failed = sorted({v.metric for v in j.verdicts if v.scenario == name and v.failed})
        assert ("FAIL" in row) == bool(failed), row
        for endpoint in sc["endpoints"]:
            assert any(ln.split()[:1] == [endpoint] for ln in text.splitlines())
    assert max(len(line) for line in text.splitlines()) <= 80
