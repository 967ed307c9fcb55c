"""Benchmark: `bookbench report` (analysis + render) on synthetic format-3 runs of 1M, 10M and, with
BOOKBENCH_BENCH_100M=1 (about 1.5 GB of disk and minutes), 100M samples: wall time and peak RSS of the command in
its own process, the cost per sample, and the issue's goals (10M <= 20 s and <= 1 GB; 100M <= 3 min and <= 2 GB).

With BOOKBENCH_BENCH_OLD=<a checkout of the code before the engine> (e.g. `git worktree add /tmp/old <commit>`)
the same rows, exported as a format-2 CSV.gz, are also reported by that code, for the before/after table.
`python -m benchmarks.test_analysis_scale ROWS DIR` builds one such run folder by hand.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.goals import goal
from benchmarks.synthetic_samples import write_folder
from bookbench.artifacts import manifest, sample_parts, samples

KNOWN = Path(__file__).resolve().parents[1] / "tests" / "data" / "known_run"
RATE = 2_778  # requests a second: 10M samples make the one-hour soak
WARMUP_S = 30.0
GOALS = {10_000_000: (20.0, 1024.0), 100_000_000: (180.0, 2048.0)}  # seconds, MB
SIZES = [1_000_000, 10_000_000] + ([100_000_000] if os.environ.get("BOOKBENCH_BENCH_100M") == "1" else [])


def build_run(run: Path, rows: int, csv: bool = False) -> Path:
    """The known-answer run folder with `rows` synthetic samples in format 3 (sealed, recorded in the manifest),
    or with `csv`, the same rows as one format-2 CSV.gz (for the code before format 3)."""
    shutil.copytree(KNOWN, run)
    (run / "samples" / "known.csv.gz").unlink()
    folder = run / "samples" / "known"
    duration = rows / RATE
    write_folder(folder, rows, duration_s=duration)
    man = manifest.read(run)
    entry = man.scenarios["known"]
    assert entry.counts is not None
    definition = {**entry.definition, "warmup_s": WARMUP_S, "batches": 10,
                  "stages": [{"duration_s": duration, "users": 50, "spawn_rate": None}]}
    if csv:
        path = run / "samples" / "known.csv.gz"
        sample_parts.export_csv(sample_parts.files(folder), path)
        shutil.rmtree(folder)
        sealed = samples.seal(path)
        assert sealed is not None
        update = {"samples_file": "samples/known.csv.gz", "samples_sha256": sealed[1], "samples_files": None}
    else:
        files = sample_parts.seal(folder, run_dir=run)
        update = {"samples_file": "samples/known", "samples_files": files, "samples_sha256": None}
    man.scenarios["known"] = entry.model_copy(update={
        **update, "definition": definition, "planned_s": duration, "status": "completed",
        "counts": entry.counts.model_copy(update={"samples": rows, "locust": rows, "service": rows})})
    manifest.write(run, man)
    return run


@dataclass(frozen=True)
class Measured:
    seconds: float
    rss_mb: float


def report(run: Path, tree: Path | None = None) -> Measured:
    """`bookbench report RUN` in its own process under /usr/bin/time: wall time and peak RSS. `tree`: another
    checkout whose code runs instead (its folder first on the import path)."""
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree)
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "bookbench", "report", str(run)],
                          capture_output=True, text=True, env=env, cwd=tree or Path.cwd(), timeout=1800)
    seconds = time.perf_counter() - start
    # 1 is NO-GO (the synthetic run breaks the known run's thresholds): a report was written all the same
    assert done.returncode in (0, 1), done.stdout[-2000:] + done.stderr[-2000:]
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    assert found is not None, done.stderr[-2000:]
    return Measured(seconds, int(found.group(1)) / 1024)


def _line(label: str, rows: int, m: Measured) -> str:
    return (f"{label:>5} {rows / 1e6:>6.0f}M: {m.seconds:7.1f} s, peak RSS {m.rss_mb:6.0f} MB  "
            f"({1e6 * m.seconds / rows:.2f} us and {m.rss_mb * 2**20 / rows:.0f} bytes per sample)")


@pytest.mark.parametrize("rows", SIZES, ids=lambda n: f"{n // 1_000_000}M")
def test_report_scales_with_samples(tmp_path: Path, rows: int) -> None:
    run = build_run(tmp_path / "run", rows)
    new = report(run)
    print(f"\n(machine shared with other jobs: figures are not an idle machine's)\n{_line('new', rows, new)}")
    old_tree = os.environ.get("BOOKBENCH_BENCH_OLD")
    if old_tree and rows <= 10_000_000:
        shutil.rmtree(run)
        old = report(build_run(tmp_path / "old", rows, csv=True), Path(old_tree))
        print(_line("old", rows, old))
    if rows in GOALS:
        seconds, mb = GOALS[rows]
        goal(f"report of {rows // 1_000_000}M samples, wall time", new.seconds, "<=", seconds, " s")
        goal(f"report of {rows // 1_000_000}M samples, peak RSS", new.rss_mb, "<=", mb, " MB")


if __name__ == "__main__":
    print(build_run(Path(sys.argv[2]), int(sys.argv[1]), csv=len(sys.argv) > 3))
