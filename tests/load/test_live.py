"""The progress display's exact figures (LiveStats) and its labelled line."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bookbench.load.live import LiveStats, Snapshot, exact_percentile
from bookbench.pipeline.locust_proc import progress_line


def test_percentile_matches_numpy_linear() -> None:
    rng = random.Random(3)
    for n in (1, 2, 7, 100, 1001):
        values = sorted(rng.lognormvariate(1, 1) for _ in range(n))
        for q in (0.5, 0.95, 0.99):
            assert exact_percentile(values, q) == pytest.approx(float(np.percentile(values, 100 * q)))


def test_snapshot_is_exact_over_all_and_over_the_window() -> None:
    live = LiveStats(window_s=5)
    # 10 s of one request every 10 ms; latency 10 ms, then 100 ms for the last 2 s
    rows = [(1000.0 + i * 0.01, 100.0 if i >= 800 else 10.0, i % 100 != 0) for i in range(1000)]
    for row in rows:
        live.add(*row)
    ends = [start + lat / 1000 for start, lat, _ in rows]
    snap = live.snapshot(now=1010.2, users=3, elapsed_s=10.2)
    assert snap.requests == 1000 and snap.failures == 10 and snap.users == 3
    assert snap.p95_ms == pytest.approx(float(np.percentile([10.0] * 800 + [100.0] * 200, 95)))
    # the window [1005.2, 1010.2) counts completions, by their end time
    assert snap.window_s == 5 and snap.recent_rps == pytest.approx(sum(1005.2 <= e < 1010.2 for e in ends) / 5)
    assert snap.recent_p95_ms == 100.0


def test_no_rate_before_a_second_of_data_and_a_master_window_lags() -> None:
    live = LiveStats(lag_s=4.0)
    live.add(100.0, 5.0, ok=True)
    assert live.snapshot(now=100.5, users=1, elapsed_s=0.5).recent_rps is None
    later = LiveStats(lag_s=4.0)
    for i in range(600):
        later.add(100.0 + i * 0.01, 1.0, ok=True)  # 6 s at 100/s; the last 4 s may still be arriving
    snap = later.snapshot(now=106.0, users=1, elapsed_s=6)
    assert snap.window_s == pytest.approx(2.0, abs=0.02) and snap.recent_rps == pytest.approx(100, rel=0.05)


def test_progress_line_labels_every_figure_and_never_overruns_the_plan(tmp_path: object) -> None:
    snap = Snapshot(t=0, elapsed_s=22.4, users=1, requests=309, failures=0, p95_ms=4.25, recent_p95_ms=5.0,
                    recent_rps=61.8, window_s=5)
    line = progress_line("burst", 20, snap)
    assert line.startswith("burst 20/20 s, finishing")
    assert "1 user ·" in line and "61.8 req/s" in line and "P95 5.0 ms" in line and "errors 0 of 309" in line
    assert progress_line("burst", 20, None) == "burst: starting Locust ..."
    early = Snapshot(t=0, elapsed_s=0.4, users=2, requests=3, failures=1, p95_ms=3.0, recent_p95_ms=None,
                     recent_rps=None, window_s=0.4)
    assert "req/s" not in progress_line("burst", 20, early)  # no rate yet rather than 0.0
    assert "errors 1 of 3 (33.33 %)" in progress_line("burst", 20, early)
