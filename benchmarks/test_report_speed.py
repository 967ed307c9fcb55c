"""Benchmark: analysis + charts + HTML for a run of 1M samples (goal <= 5 s, enforced only by
`make bench-check`). Not part of `make test`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.goals import goal
from bookbench.artifacts.samples import SampleWriter
from bookbench.pipeline import analyse

KNOWN = Path(__file__).resolve().parents[1] / "tests" / "data" / "known_run"
N = 1_000_000
GOAL_S = 5.0


@pytest.fixture(scope="module")
def big_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The known-answer run folder with 1M synthetic samples (lognormal latencies, 0.1 % failures, 300 s)."""
    run = tmp_path_factory.mktemp("bench") / "run"
    shutil.copytree(KNOWN, run)
    (run / "samples" / "known.csv.gz").unlink()
    rng = np.random.default_rng(1)
    ts = 1_700_000_000 + np.sort(rng.uniform(0, 300, N))
    lat = rng.lognormal(3, 0.6, N)
    names = np.array(["checkAvailability", "lookupUpcomingAppointment", "bookClinicAppointment",
                      "cancelAppointment"])[rng.integers(0, 4, N)]
    ok = rng.random(N) > 0.001
    writer = SampleWriter(run / "samples" / "known.csv.gz")
    for start in range(0, N, 100_000):
        sl = slice(start, start + 100_000)
        writer.extend([(float(a), float(b), str(c), "GET", 200 if d else 503, int(d), "" if d else "HTTP 503", 100,
                        30, "local", None) for a, b, c, d in zip(ts[sl], lat[sl], names[sl], ok[sl], strict=True)])
        writer.flush()
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["scenarios"]["known"]["definition"]["warmup_s"] = 5
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def test_report_of_one_million_samples(benchmark: Any, big_run: Path) -> None:
    result = benchmark.pedantic(analyse.analyse_and_render, args=(big_run,), rounds=3, iterations=1)
    seconds = benchmark.stats.stats.median
    samples = result.summary.scenarios["known"].samples_total
    print(f"\nreport for {samples:,} samples: median {seconds:.2f} s over 3 rounds")
    goal("report of 1M samples, median", seconds, "<=", GOAL_S, " s")
    assert samples == N
