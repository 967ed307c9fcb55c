"""Benchmark: `bookbench compare --runs A,B` on pairs of synthetic format-3 runs (issue 28: a comparison's memory
bounded by seconds x latency bins, not by requests): wall time and peak RSS of the command in its own process, for
1M samples over 6 minutes, 10M over the same 6 minutes and 10M over an hour (the issue's soak, 2,778 req/s).

The goal: a 10M pair over 6 minutes needs about the memory of a 1M pair over 6 minutes (at most 1.25x), as memory
grows with the runs' seconds, not their requests. Both runs of a pair hold the same rows (an A/A comparison: the
figures do not matter here, the work does). Each run is analysed (`bookbench report`) before the command is
measured, so the figures are the comparison's alone.

Also measured: one run's figures alone (reading its series and the block bootstrap of every metric: the part that
changed). With BOOKBENCH_BENCH_OLD=<a checkout of the code before the change> (`git worktree add /tmp/old ece3cb7`)
copies of the same runs, analysed by that code, are compared by it too, for the before/after table, and its
within-run variances must equal the new code's to the last bit.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from benchmarks import test_analysis_scale as scale
from benchmarks.goals import goal
from benchmarks.test_analysis_scale import Measured
from benchmarks.test_notifications_scale import timed
from bookbench.analysis import run_figures

ROOT = Path(__file__).resolve().parents[1]
SOAK_RATE = scale.RATE  # the analysis benchmark's rate: 10M samples make the one-hour soak
CASES = {"1M over 6 min": (1_000_000, 360.0), "10M over 6 min": (10_000_000, 360.0),
         "10M over 1 h": (10_000_000, 10_000_000 / SOAK_RATE)}
SAME_SECONDS = ("1M over 6 min", "10M over 6 min")
GOAL_RATIO = 1.25
_measured: dict[str, Measured] = {}  # the new code's figures per case, for the goal across cases

# one run's figures (series + block bootstrap, what changed) in a process of its own, each metric's within-run
# variance printed to the last bit: the old code's comparison._figures, and the new code's
FIGURES = """
import sys
from pathlib import Path
from bookbench.analysis import {module}
found = {module}.{function}(Path(sys.argv[1]), "known", 500)
print({{m: f if isinstance(f, str) else repr(f.within_var) for m, f in found.items()}})
"""
OLD_FIGURES = FIGURES.format(module="comparison", function="_figures")
NEW_FIGURES = FIGURES.format(module="run_figures", function="figures")


def pair(folder: Path, rows: int, duration_s: float, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """Two analysed run folders of `rows` samples over `duration_s` (the analysis benchmark's maker, which spreads
    its rows over rows / RATE seconds)."""
    monkeypatch.setattr(scale, "RATE", rows / duration_s)
    first = scale.build_run(folder / "a", rows)
    scale.report(first)
    second = folder / "b"
    shutil.copytree(first, second)
    return first, second


def compare(runs: tuple[Path, Path], out: Path, tree: Path | None = None) -> Measured:
    measured, _ = timed(["-m", "bookbench", "compare", "--runs", ",".join(map(str, runs)), "--out", str(out)], tree,
                        cwd=ROOT)
    return measured


def old_compare(runs: tuple[Path, Path], folder: Path, tree: Path) -> Measured:
    """The same rows compared by the old code, each run analysed by that code first (its own summary.json)."""
    copies = []
    for run in runs:
        copy = folder / f"old-{run.name}"
        shutil.copytree(run, copy, ignore=shutil.ignore_patterns("summary.json", "*.html"))
        scale.report(copy, tree)
        copies.append(copy)
    return compare((copies[0], copies[1]), folder / "out-old", tree)


def _line(label: str, m: Measured, samples: int) -> str:
    return (f"  {label:<34} {m.seconds:7.1f} s, peak RSS {m.rss_mb:6.0f} MB  "
            f"({m.rss_mb * 2**20 / samples:.0f} bytes per sample)")


@pytest.mark.parametrize("case", list(CASES))
def test_compare_scales_with_seconds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    rows, duration_s = CASES[case]
    runs = pair(tmp_path, rows, duration_s, monkeypatch)
    held = run_figures.series(runs[0], "known")
    print(f"\n(machine shared with other jobs: figures are not an idle machine's)\ncompare of two runs, {case}: "
          f"{held.requests:,} steady requests a run in {held.blocks:,} seconds x {held.bins.size:,} latency bins "
          f"(the histogram held: {held.counts.nbytes / 2**20:.1f} MB a run)")
    new = _measured[case] = compare(runs, tmp_path / "out")
    one, said = timed(["-c", NEW_FIGURES, str(runs[0])], cwd=ROOT)
    print(_line("compare --runs A,B: new", new, 2 * rows) + "\n" + _line("one run's figures: new", one, rows))
    old_tree = os.environ.get("BOOKBENCH_BENCH_OLD")
    if old_tree:
        print(_line("compare --runs A,B: old", old_compare(runs, tmp_path, Path(old_tree)), 2 * rows))
        one, said_before = timed(["-c", OLD_FIGURES, str(tmp_path / "old-a")], Path(old_tree))
        print(_line("one run's figures: old", one, rows))
        assert said == said_before, f"the within-run variances differ: {said} against {said_before}"
    if case == SAME_SECONDS[1]:
        if SAME_SECONDS[0] in _measured:
            goal(f"compare peak RSS, {SAME_SECONDS[1]} / {SAME_SECONDS[0]}",
                 new.rss_mb / _measured[SAME_SECONDS[0]].rss_mb, "<=", GOAL_RATIO, "x")
        else:
            print(f"(goal not stated: the {SAME_SECONDS[0]} case did not run in this session)")
