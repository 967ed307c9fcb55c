"""Latency drift and resource slopes from seeded synthetic series: a known slope is recovered inside its interval,
a flat series shows no drift, too few windows are not measured."""

from __future__ import annotations

import random

import pytest

from bookbench.analysis import drift
from bookbench.artifacts.soak import Probe, TableProbe
from bookbench.artifacts.summary import TimePoint


def _series(seconds: int, p95_at: float, per_hour: float, noise: float, seed: int = 7) -> list[TimePoint]:
    rng = random.Random(seed)
    out = []
    for t in range(seconds):
        p95 = p95_at + per_hour * t / 3600 + rng.gauss(0, noise)
        out.append(TimePoint(t=t, rps=50, errors=0, p50=p95 / 2, p95=p95, p99=p95 * 1.5, users=10))
    return out


def test_a_known_slope_is_recovered_inside_its_interval() -> None:
    # 30 minutes, P95 20 ms rising 6 ms per hour (30 % of 20 ms per hour), per-second noise 1 ms
    result = drift.latency_drift(_series(1800, 20.0, 6.0, 1.0), warmup_s=10)
    assert result.slope is not None and result.window_s == 60
    assert result.slope.low <= 6.0 <= result.slope.high
    assert result.slope.n == 29  # the warm-up's minute and the last partial window are left out
    assert result.verdict == drift.DRIFT
    assert "ms per hour" in result.words()


def test_a_flat_series_shows_no_drift() -> None:
    result = drift.latency_drift(_series(1800, 20.0, 0.0, 1.0, seed=3), warmup_s=10)
    assert result.slope is not None
    assert result.slope.low <= 0 <= result.slope.high
    assert result.verdict == drift.NO_DRIFT


def test_a_small_real_rise_is_inconclusive_against_the_threshold() -> None:
    # 2 % per hour, measured precisely: real, but not beyond the 10 % threshold
    result = drift.latency_drift(_series(3600, 50.0, 1.0, 0.05), warmup_s=0)
    assert result.slope is not None and result.slope.low > 0
    assert result.verdict == drift.INCONCLUSIVE


def test_too_few_windows_are_not_measured() -> None:
    result = drift.latency_drift(_series(8, 20.0, 0.0, 1.0), warmup_s=3)
    assert result.slope is None and result.verdict.startswith("not measured: too short")


def test_a_short_run_is_cut_into_twelve_windows() -> None:
    size, wins, _ = drift.windows(_series(40, 20.0, 0.0, 0.5), warmup_s=3)
    assert size == 3 and len(wins) == 12


def test_ols_recovers_an_exact_line() -> None:
    fit = drift.ols([0, 10, 20, 30], [1.0, 2.0, 3.0, 4.0])
    assert not isinstance(fit, str)
    assert fit.per_hour == pytest.approx(360.0) and fit.low == pytest.approx(360.0)
    assert isinstance(drift.ols([0, 1], [1.0, 2.0]), str)


def test_resource_trends_from_probes() -> None:
    probes = [Probe(t=1000.0 + 10 * i, rss_bytes=(100 + i) * 2**20, service_processes=1,
                    tables={"appointments": TableProbe(total_bytes=(50 + 2 * i) * 2**20, table_bytes=0, index_bytes=0,
                                                       n_dead_tup=100 * i)},
                    not_measured={"outbox": "not measured: no notification_outbox table in this database"})
              for i in range(6)]
    trends = {t.name: t for t in drift.resource_trends(probes)}
    assert trends["service RSS"].slope is not None
    assert trends["service RSS"].slope.per_hour == pytest.approx(360.0)  # 1 MB per 10 s
    assert trends["table + index size"].slope is not None
    assert trends["table + index size"].slope.per_hour == pytest.approx(720.0)
    assert trends["dead tuples"].last == 500
    assert trends["outbox backlog"].slope is None
    assert trends["outbox backlog"].words() == "not measured: no notification_outbox table in this database"
