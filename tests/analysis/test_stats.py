"""The within-run block bootstrap and the verdict rule: variance against independent runs, binned percentiles against
brute force, verdict truth table, input checks."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from bookbench.analysis import stats
from bookbench.analysis.stats import METRICS, RunSeries, verdict


def synthetic_run(rng: np.random.Generator, rate: float, mu: float, sigma: float, blocks: int,
                  latency_scale: float = 1.0, rate_scale: float = 1.0) -> RunSeries:
    """Per-second structure of a closed-loop run: each second has its own level (GC, checkpoints, neighbours),
    requests in a slow second are slower and fewer, arrivals are Poisson around the run's rate."""
    level = rng.lognormal(0.0, 0.1, blocks)
    counts = rng.poisson(rate * rate_scale / level)
    second = np.repeat(np.arange(blocks), counts)
    latency = rng.lognormal(mu, sigma, second.size) * level[second] * latency_scale
    return RunSeries.from_arrays(second, latency)


def test_within_run_variance_matches_the_spread_of_independent_runs() -> None:
    """Without run-level noise, independent runs of one distribution differ by what the block bootstrap of one run
    predicts (within a factor of two: the per-second levels make blocks, not requests, the unit)."""
    rng = np.random.default_rng(4)
    runs = [synthetic_run(rng, 100, 2.5, 0.5, 40) for _ in range(40)]
    figures: tuple[tuple[str, Callable[[stats.RunSeries], float]], ...] = (
        ("p95", lambda r: float(np.percentile(r.latency_ms, 95))), ("throughput", lambda r: r.requests / r.blocks))
    for metric, value in figures:
        observed = np.var(np.log([value(r) for r in runs]), ddof=1)
        predicted = np.mean([stats.within_run_log_variance(r, metric, n_boot=300, seed=i)
                             for i, r in enumerate(runs[:10])])
        assert 0.5 < predicted / observed < 2.0, (metric, predicted, observed)


def test_within_run_variance_is_reproducible_and_checks_its_input() -> None:
    rng = np.random.default_rng(9)
    run = synthetic_run(rng, 100, 2.0, 0.5, 40)
    for metric in METRICS:
        assert stats.within_run_log_variance(run, metric, seed=3) == stats.within_run_log_variance(run, metric, seed=3)
    assert stats.within_run_log_variance(run, "p95", seed=3) != stats.within_run_log_variance(run, "p95", seed=4)
    few_requests = RunSeries.from_arrays(np.arange(19) % 5, np.full(19, 3.0))
    two_seconds = RunSeries.from_arrays(np.repeat([0, 1], 50), np.full(100, 3.0))
    with pytest.raises(ValueError, match="too few samples"):
        stats.within_run_log_variance(few_requests, "p95")
    with pytest.raises(ValueError, match="too few samples"):
        stats.within_run_log_variance(two_seconds, "throughput")
    with pytest.raises(ValueError, match="no samples"):
        stats.within_run_log_variance(RunSeries.from_arrays([], []), "p50")
    with pytest.raises(ValueError, match="unknown metric"):
        stats.within_run_log_variance(run, "p90")


@pytest.mark.parametrize(("metric", "low", "high", "expected"), [
    # latency: lower is better
    ("p95", 0.80, 0.94, "improved"),
    ("p95", 0.90, 0.97, "within noise"),  # detectably faster, but not clearly by more than 5 %
    ("p95", 0.96, 0.99, "within noise"),
    ("p95", 0.97, 1.02, "no change"),
    ("p95", 0.80, 1.20, "no change"),
    ("p95", 1.01, 1.04, "within noise"),
    ("p95", 1.03, 1.10, "within noise"),
    ("p95", 1.06, 1.30, "regressed"),
    ("p50", 0.50, 0.60, "improved"),
    ("p99", 1.50, 1.60, "regressed"),
    # throughput: higher is better
    ("throughput", 1.06, 1.30, "improved"),
    ("throughput", 1.03, 1.10, "within noise"),
    ("throughput", 0.97, 1.02, "no change"),
    ("throughput", 0.90, 0.97, "within noise"),
    ("throughput", 0.80, 0.94, "regressed"),
    # the threshold itself is not beyond the threshold
    ("p95", 0.90, 0.95, "within noise"),
    ("throughput", 1.05, 1.10, "within noise"),
    # 1.0 exactly on an edge of the interval counts as contained
    ("p95", 1.0, 1.03, "no change"),
])
def test_verdict_truth_table(metric: str, low: float, high: float, expected: str) -> None:
    assert verdict(metric, low, high, 0.05) == expected


def test_verdict_threshold_and_input_checks() -> None:
    assert verdict("p95", 0.85, 0.92, 0.10) == "within noise"
    assert verdict("p95", 0.85, 0.92, 0.0) == "improved"
    assert verdict("throughput", 0.85, 0.92, 0.0) == "regressed"
    with pytest.raises(ValueError, match="unknown metric"):
        verdict("p90", 0.9, 1.1, 0.05)
    with pytest.raises(ValueError, match="invalid interval"):
        verdict("p95", 1.1, 0.9, 0.05)
    with pytest.raises(ValueError, match="invalid interval"):
        verdict("p95", float("nan"), 0.9, 0.05)


def test_from_arrays_validates() -> None:
    with pytest.raises(ValueError, match="equal length"):
        RunSeries.from_arrays([0, 1], [1.0])
    with pytest.raises(ValueError, match="finite"):
        RunSeries.from_arrays([0, 1], [1.0, float("nan")])
    with pytest.raises(ValueError, match="whole"):
        RunSeries.from_arrays([0.5, 1], [1.0, 2.0])
    run = RunSeries.from_arrays([3.0, 4.0], [1, 2])
    assert run.second.dtype == np.int64 and run.latency_ms.dtype == np.float64


def test_histogram_percentile_is_close_to_exact() -> None:
    """The replicates use a binned distribution; on the unresampled data it must match numpy within a bin."""
    rng = np.random.default_rng(10)
    run = synthetic_run(rng, 200, 3.0, 0.8, 50)
    bins, hist = run._block_hist
    for q in (50.0, 95.0, 99.0):
        approx = stats._replicate_percentiles(np.ones((1, run.blocks)), bins, hist, q)[0]
        assert approx == pytest.approx(np.percentile(run.latency_ms, q), rel=0.005)


def test_replicates_match_brute_force_resampling() -> None:
    """weights @ block histograms gives the same percentile as concatenating the drawn seconds' raw samples."""
    rng = np.random.default_rng(11)
    runs = [synthetic_run(rng, 60, 2.0, 0.7, 12), synthetic_run(rng, 90, 2.3, 0.4, 9)]
    weights = stats._weights(runs, 40, np.random.default_rng(0))
    bins, hist = stats._variant_hist(runs)
    by_block = [run.latency_ms[run.second == s] for run in runs for s in range(run.blocks)]
    for q in (50.0, 95.0, 99.0):
        fast = stats._replicate_percentiles(weights, bins, hist, q)
        for row, value in zip(weights, fast, strict=True):
            drawn = np.concatenate([np.tile(b, int(w)) for b, w in zip(by_block, row, strict=True)])
            assert value == pytest.approx(np.percentile(drawn, q), rel=0.005)
    # each replicate draws as many blocks as the runs it picked have, and two-level draws pick whole runs
    drawn_blocks = weights.sum(axis=1)
    assert set(drawn_blocks.tolist()) <= {24.0, 21.0, 18.0}
