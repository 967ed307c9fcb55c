"""Latency drift and resource slopes from seeded synthetic series: a known slope is recovered inside its interval,
a flat series shows no drift, a precise small rise or a fall is within the threshold, a short run is not
extrapolated, and the interval holds the true slope of autocorrelated (AR(1)) windows most of the time."""

from __future__ import annotations

import random

import pytest

from bookbench.analysis import drift
from bookbench.artifacts.soak import Probe, TableProbe
from bookbench.artifacts.summary import LatencyFit, TimePoint


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


def test_a_small_precise_rise_and_a_fall_are_within_the_threshold() -> None:
    # 2 % per hour, measured precisely: real, and wholly below the 10 % threshold
    result = drift.latency_drift(_series(3600, 50.0, 1.0, 0.05), warmup_s=0)
    assert result.slope is not None and result.slope.low > 0 and result.slope.high < 5.0
    assert result.verdict == drift.WITHIN
    assert "within threshold (below the 10 %/h threshold)" in result.words()
    falling = drift.latency_drift(_series(3600, 50.0, -10.0, 0.05), warmup_s=0)
    assert falling.slope is not None and falling.slope.high < 0 and falling.verdict == drift.WITHIN


def test_a_rise_whose_interval_reaches_past_the_threshold_is_inconclusive() -> None:
    # 8 % per hour over 10 minutes with noisy seconds: a rise, but the interval spans the 10 % threshold
    result = drift.latency_drift(_series(600, 50.0, 4.0, 1.0, seed=5), warmup_s=0)
    rel = result.slope.relative() if result.slope else None
    assert rel is not None and 0 < rel[1] < 0.10 < rel[2]
    assert result.verdict == drift.INCONCLUSIVE


def test_less_than_five_minutes_of_steady_state_is_not_extrapolated() -> None:
    result = drift.latency_drift(_series(43, 20.0, 300.0, 0.5), warmup_s=3)
    assert result.slope is None and len(result.windows) == 13  # the page still draws them
    assert result.verdict == "too short to extrapolate per hour (39 s of steady state; 5 minutes needed)"


def _covered(phi: float, seeds: int = 300, n: int = 29) -> float:
    """Share of seeded AR(1) series y_t = t + e_t, e_t = phi e_(t-1) + N(0, 1), whose interval holds the slope 1."""
    held = 0
    for seed in range(seeds):
        rng, e, ys = random.Random(seed), 0.0, []
        for t in range(n):
            e = phi * e + rng.gauss(0, 1)
            ys.append(t + e)
        fit = drift.ols([60.0 * t for t in range(n)], ys)  # one point a minute: 60 per hour
        assert not isinstance(fit, str)
        held += fit.low <= 60.0 <= fit.high
    return held / seeds


def test_the_interval_allows_for_autocorrelated_windows() -> None:
    # independent windows keep their 95 % (97 %); correlated ones (autovacuum cycles): 90 %, where an interval that
    # treats them as independent held 60 % of these series
    assert _covered(0.0) >= 0.92
    assert _covered(0.7) >= 0.82


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
    probes = [p.model_copy(update={"t": 1000.0 + 60 * i}) for i, p in enumerate(probes)]  # 5 minutes of probes
    trends = {t.name: t for t in drift.resource_trends(probes)}
    assert trends["service RSS"].slope is not None
    assert trends["service RSS"].slope.per_hour == pytest.approx(60.0)  # 1 MB a minute
    assert trends["table + index size"].slope is not None
    assert trends["table + index size"].slope.per_hour == pytest.approx(120.0)
    assert trends["dead tuples"].last == 500
    assert trends["service RSS"].words() == ("+60.00 MB per hour (95 % interval +60.00 to +60.00; 100.0 -> 105.0 MB "
                                             "over 6 probes)")
    assert trends["outbox backlog"].slope is None
    assert trends["outbox backlog"].words() == "not measured: no notification_outbox table in this database"


def test_a_short_span_of_probes_shows_first_and_last_not_a_slope() -> None:
    probes = [Probe(t=1000.0 + 10 * i, rss_bytes=(100 + i) * 2**20, service_processes=1) for i in range(6)]
    rss = next(t for t in drift.resource_trends(probes) if t.name == "service RSS")
    assert rss.slope is None
    assert rss.words() == "too short to extrapolate per hour (50 s of probes; 5 minutes needed): 100.0 -> 105.0 MB"


def test_stored_figures_judge_as_the_fresh_fit_after_a_trip_through_json() -> None:
    # what summary.json keeps (ScenarioSummary.drift) holds no threshold: the same stored figures judged against two
    # thresholds give two verdicts, and a copy read back from JSON words exactly what the fresh fit does
    fit = drift.measure_latency(_series(1800, 20.0, 6.0, 1.0), warmup_s=10)
    stored = LatencyFit.model_validate_json(fit.model_dump_json())
    assert stored == fit and fit.long_enough and fit.why is None
    assert drift.judged(stored, 0.10).words() == drift.latency_drift(_series(1800, 20.0, 6.0, 1.0), 10).words()
    assert drift.judged(stored, 0.10).verdict == drift.DRIFT
    assert drift.judged(stored, 5.0).verdict == drift.WITHIN
