"""The progress display's exact figures (LiveStats) and its labelled line, closed and open model."""

from __future__ import annotations

import dataclasses
import random

import numpy as np
import pytest

from bookbench.config.scenarios import Stage
from bookbench.config.shape import arrival_rate_at
from bookbench.load.live import LiveStats, Snapshot, exact_percentile
from bookbench.pipeline.locust_proc import progress_line


def test_percentile_matches_numpy_linear() -> None:
    rng = random.Random(3)
    for n in (1, 2, 7, 100, 1001):
        values = sorted(rng.lognormvariate(1, 1) for _ in range(n))
        for q in (0.5, 0.95, 0.99):
            assert exact_percentile(values, q) == pytest.approx(float(np.percentile(values, 100 * q)))


def test_snapshot_counts_exactly_and_its_p95_is_bucketed_over_all_exact_over_the_window() -> None:
    live = LiveStats(window_s=5)
    # 10 s of one request every 10 ms; latency 10 ms, then 100 ms for the last 2 s
    rows = [(1000.0 + i * 0.01, 100.0 if i >= 800 else 10.0, i % 100 != 0) for i in range(1000)]
    for row in rows:
        live.add(*row)
    ends = [start + lat / 1000 for start, lat, _ in rows]
    snap = live.snapshot(now=1010.2, users=3, elapsed_s=10.2)
    assert snap.requests == 1000 and snap.failures == 10 and snap.users == 3
    # over the whole run, 1 % wide buckets (their middle: within 0.5 %); the window's P95 is exact
    assert snap.p95_ms == pytest.approx(float(np.percentile([10.0] * 800 + [100.0] * 200, 95)), rel=0.005)
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


def test_open_model_snapshot_sums_what_each_process_has_in_flight_after_its_latest_completion() -> None:
    live = LiveStats(lag_s=4.0)
    # the samples' users column (open model): the process's requests under way when this one completed, itself
    # included; rows of a process may arrive out of order, its latest completion counts
    live.add(100.0, 50.0, True, 9, "worker-a")
    live.add(100.5, 20.0, True, 4, "worker-a")  # ends 100.52, the latest of worker-a: 3 left under way
    live.add(100.1, 10.0, True, 7, "worker-a")  # ends 100.11: older, ignored
    live.add(100.2, 30.0, False, 6, "worker-b")  # 5 left
    snap = live.snapshot(now=101.0, users=2, elapsed_s=1.0, offered_rps=60.0)
    assert snap.in_flight == 3 + 5 and snap.offered_rps == 60.0 and snap.users == 2
    live.add(101.0, 5.0, True, 1, "worker-b")  # the last request of worker-b is in: none left there
    assert live.snapshot(now=102.0, users=2, elapsed_s=2.0, offered_rps=0.0).in_flight == 3
    closed = LiveStats()
    closed.add(100.0, 5.0, True)
    snap = closed.snapshot(now=101.0, users=3, elapsed_s=1.0)
    assert snap.in_flight is None and snap.offered_rps is None  # the closed model has users, not these


def test_open_model_progress_line_says_the_offered_rate_and_the_requests_in_flight() -> None:
    snap = Snapshot(t=0, elapsed_s=12.2, users=1, requests=700, failures=0, p95_ms=4.25, recent_p95_ms=5.0,
                    recent_rps=59.8, window_s=5, offered_rps=60.0, in_flight=12)
    line = progress_line("arrivals", 30, snap)
    assert line.startswith("arrivals 12/30 s · offered 60/s, 12 in flight · last 5 s: 59.8 req/s"), line
    assert "user" not in line  # Locust's one arrival scheduler per process is not the load
    # before the first completion the in-flight figure is unknown and left out, never shown as 0
    first = dataclasses.replace(snap, requests=0, in_flight=None, p95_ms=None, recent_p95_ms=None, recent_rps=None)
    assert "· offered 60/s · all: errors 0 of 0" in progress_line("arrivals", 30, first)
    # after the plan nothing more is offered while the last requests finish
    late = dataclasses.replace(snap, elapsed_s=31.0, offered_rps=0.0, in_flight=2)
    assert "30/30 s, finishing in-flight requests · offered 0/s, 2 in flight ·" in progress_line("arrivals", 30, late)
    assert "offered 1,500/s" in progress_line("arrivals", 30, dataclasses.replace(snap, offered_rps=1500.0))
    assert "offered 2.5/s" in progress_line("arrivals", 30, dataclasses.replace(snap, offered_rps=2.5))


def test_offered_rate_follows_the_arrival_stages() -> None:
    stages = [Stage(duration_s=10, arrival_rate=20), Stage(duration_s=5, arrival_rate=60)]
    assert [arrival_rate_at(stages, t) for t in (0, 9.9, 10, 14.9, 15, 99)] == [20, 20, 60, 60, 0, 0]


def test_a_long_run_keeps_a_bounded_number_of_latency_keys() -> None:
    # a soak's million requests of distinct latencies: the running P95 must not hold (and sort) a key for each
    live = LiveStats()
    rng = random.Random(3)
    for i in range(200_000):
        live.add(1000.0 + i * 0.001, rng.lognormvariate(3.0, 1.0), True)
    assert len(live.latencies) < 3_000
    assert live.snapshot(now=1201.0, users=1, elapsed_s=201.0).requests == 200_000
