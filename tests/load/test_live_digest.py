"""A worker's live figures reach its master as a digest (load/live.py compact()), never as its samples: the
master's counts stay exact and its P95s within the digest's 3 significant digits."""

from __future__ import annotations

import random

import numpy as np
import pytest

from bookbench.load.live import LiveStats, compact


def test_a_master_fed_digests_counts_exactly_and_its_p95_is_within_one_percent() -> None:
    rng = random.Random(5)
    rows = [(1000.0 + i * 0.0002, rng.lognormvariate(1.5, 0.8), i % 50 != 0) for i in range(50_000)]
    digest = compact(rows)
    assert len(digest) < len(rows) / 5  # 10 s at 5,000/s: a sixth of the entries (bounded per second, not per request)
    master = LiveStats(lag_s=4.0)
    master.add_digest(digest[: len(digest) // 2])
    master.add_digest(digest[len(digest) // 2:])
    exact = LiveStats(lag_s=4.0)
    for start, latency, ok in rows:
        exact.add(start, latency, ok)
    got, want = (s.snapshot(now=1014.0, users=4, elapsed_s=14.0) for s in (master, exact))
    assert (got.requests, got.failures) == (want.requests, want.failures) == (50_000, 1000)
    assert want.p95_ms == pytest.approx(float(np.percentile([r[1] for r in rows], 95)), rel=0.005)  # 1 % buckets
    assert got.p95_ms == pytest.approx(want.p95_ms, rel=0.01)
    assert got.recent_p95_ms == pytest.approx(want.recent_p95_ms, rel=0.01)
    assert got.recent_rps == pytest.approx(want.recent_rps, rel=0.1)  # completions placed within 0.25 s
