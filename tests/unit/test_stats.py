"""Block-bootstrap ratio CIs: calibration on synthetic runs, exact point estimates, repeats, verdicts, edge cases."""

from __future__ import annotations

import numpy as np
import pytest

from reports import stats
from reports.stats import METRICS, RunSeries, compare, verdict

PAIRS = 200
# calibration uses 500 resamples instead of the default 2000 to keep 1200 comparisons within a few seconds;
# 500 is plenty for the 2.5 % / 97.5 % percentiles the verdicts depend on
CALIBRATION_BOOT = 500


def synthetic_run(rng: np.random.Generator, rate: float, mu: float, sigma: float, blocks: int,
                  latency_scale: float = 1.0, rate_scale: float = 1.0) -> RunSeries:
    """Per-second structure of a closed-loop run: each second has its own level (GC, checkpoints, neighbours),
    requests in a slow second are slower and fewer, arrivals are Poisson around the run's rate."""
    level = rng.lognormal(0.0, 0.1, blocks)
    counts = rng.poisson(rate * rate_scale / level)
    second = np.repeat(np.arange(blocks), counts)
    latency = rng.lognormal(mu, sigma, second.size) * level[second] * latency_scale
    return RunSeries.from_arrays(second, latency)


def calibration_rates(latency_scale: float, rate_scale: float, seed: int) -> dict[str, dict[str, float]]:
    """Verdict frequencies over PAIRS baseline/candidate pairs, each pair from its own scenario distribution."""
    rng = np.random.default_rng(seed)
    found: dict[str, list[str]] = {"p95": [], "throughput": []}
    excludes_one: dict[str, int] = {"p95": 0, "throughput": 0}
    for i in range(PAIRS):
        rate = rng.uniform(50, 200)
        mu, sigma = np.log(rng.uniform(5, 50)), rng.uniform(0.3, 0.8)
        blocks = int(rng.integers(30, 61))
        base = synthetic_run(rng, rate, mu, sigma, blocks)
        cand = synthetic_run(rng, rate, mu, sigma, blocks, latency_scale, rate_scale)
        for metric in found:
            ci = compare([base], [cand], metric, n_boot=CALIBRATION_BOOT, seed=i)
            found[metric].append(ci.verdict)
            excludes_one[metric] += not ci.low <= 1.0 <= ci.high
    return {m: {**{v: found[m].count(v) / PAIRS for v in stats.VERDICTS}, "ci excludes 1": excludes_one[m] / PAIRS}
            for m in found}


def test_calibration_a_a_false_change_rate() -> None:
    rates = calibration_rates(1.0, 1.0, seed=1)
    print(f"\nA/A over {PAIRS} pairs: {rates}")
    for metric, r in rates.items():
        assert r["improved"] + r["regressed"] <= 0.05, metric
        # not a verdict, but the interval's own calibration: a 95 % CI should exclude the truth ~5 % of the time
        assert r["ci excludes 1"] <= 0.12, metric


def test_calibration_detects_20_percent_improvement() -> None:
    rates = calibration_rates(0.8, 1.2, seed=2)
    print(f"\nlatency x0.8, throughput x1.2 over {PAIRS} pairs: {rates}")
    for metric, r in rates.items():
        assert r["improved"] >= 0.95, metric


def test_calibration_detects_20_percent_regression() -> None:
    rates = calibration_rates(1.2, 0.8, seed=3)
    print(f"\nlatency x1.2, throughput x0.8 over {PAIRS} pairs: {rates}")
    assert rates["throughput"]["regressed"] >= 0.95
    # A P95 slowdown x1.2 is harder to call than a speed-up x0.8: ln 1.2 = 0.18 < ln(1/0.8) = 0.22, the CI must clear
    # 1.05 (a margin of ln(1.2/1.05) = 0.13, against ln(0.95/0.8) = 0.17), and the slower candidate serves fewer
    # requests. In the smallest draws (50 req/s x 30 s, sigma 0.8) that is beyond the resolution of one run, so the
    # rate sits near 95 % (0.92-0.98 over seeds 10-15); the rest are "within noise", never "improved".
    assert rates["p95"]["regressed"] >= 0.90
    assert rates["p95"]["improved"] == 0.0


def test_point_estimates_are_exact() -> None:
    rng = np.random.default_rng(5)
    base = [synthetic_run(rng, 100, 2.0, 0.5, 40), synthetic_run(rng, 80, 2.2, 0.6, 35)]
    cand = [synthetic_run(rng, 120, 1.9, 0.5, 45)]
    pooled = np.concatenate([r.latency_ms for r in base])
    for metric, q in (("p50", 50), ("p95", 95), ("p99", 99)):
        ci = compare(base, cand, metric, n_boot=200)
        assert ci.baseline == float(np.percentile(pooled, q))
        assert ci.candidate == float(np.percentile(cand[0].latency_ms, q))
        assert ci.ratio == ci.candidate / ci.baseline
    ci = compare(base, cand, "throughput", n_boot=200)
    assert ci.baseline == pooled.size / (base[0].blocks + base[1].blocks)
    assert ci.n_baseline == pooled.size and ci.n_candidate == cand[0].requests
    assert ci.blocks_baseline == base[0].blocks + base[1].blocks and ci.blocks_candidate == cand[0].blocks


def test_empty_seconds_inside_the_run_count_for_throughput() -> None:
    second = np.repeat([10, 11, 14], 10)  # seconds 12 and 13 were idle: 30 requests over 5 windows
    run = RunSeries.from_arrays(second, np.full(30, 5.0))
    assert run.blocks == 5
    assert compare([run], [run], "throughput", n_boot=200).baseline == 6.0


def test_interval_brackets_the_point_estimate() -> None:
    rng = np.random.default_rng(6)
    base, cand = synthetic_run(rng, 150, 2.5, 0.6, 60), synthetic_run(rng, 150, 2.5, 0.6, 60, 0.9)
    for metric in METRICS:
        ci = compare([base], [cand], metric)
        assert ci.low < ci.ratio < ci.high, ci
        assert all(np.isfinite([ci.baseline, ci.candidate, ci.ratio, ci.low, ci.high]))


def test_run_to_run_drift_widens_the_interval_and_equal_variants_show_no_change() -> None:
    rng = np.random.default_rng(7)
    first = synthetic_run(rng, 100, 2.0, 0.5, 40)
    drifted = synthetic_run(rng, 100, 2.0, 0.5, 40, latency_scale=1.3, rate_scale=0.75)
    cand = synthetic_run(rng, 100, 2.0, 0.5, 40)
    for metric in ("p95", "throughput"):
        single = compare([first], [cand], metric)
        repeated = compare([first, drifted], [cand], metric)
        assert repeated.high - repeated.low > 2 * (single.high - single.low), metric
        same = compare([first, drifted], [first, drifted], metric)
        assert same.verdict == "no change", same
        assert compare([first], [first], metric).verdict == "no change"


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


def test_too_few_samples_names_the_side() -> None:
    rng = np.random.default_rng(8)
    ok = synthetic_run(rng, 50, 2.0, 0.5, 10)
    few_requests = RunSeries.from_arrays(np.arange(19) % 5, np.full(19, 3.0))
    two_seconds = RunSeries.from_arrays(np.repeat([0, 1], 50), np.full(100, 3.0))
    with pytest.raises(ValueError, match="baseline: too few samples"):
        compare([few_requests], [ok], "p95")
    with pytest.raises(ValueError, match="candidate: too few samples"):
        compare([ok], [two_seconds], "throughput")
    with pytest.raises(ValueError, match="candidate: no runs"):
        compare([ok], [], "p50")
    with pytest.raises(ValueError, match="baseline: run 2 of 2 has no samples"):
        compare([ok, RunSeries.from_arrays([], [])], [ok], "p50")
    with pytest.raises(ValueError, match="unknown metric"):
        compare([ok], [ok], "p90")


def test_from_arrays_validates() -> None:
    with pytest.raises(ValueError, match="equal length"):
        RunSeries.from_arrays([0, 1], [1.0])
    with pytest.raises(ValueError, match="finite"):
        RunSeries.from_arrays([0, 1], [1.0, float("nan")])
    with pytest.raises(ValueError, match="whole"):
        RunSeries.from_arrays([0.5, 1], [1.0, 2.0])
    run = RunSeries.from_arrays([3.0, 4.0], [1, 2])
    assert run.second.dtype == np.int64 and run.latency_ms.dtype == np.float64


def test_reproducible_with_the_same_seed() -> None:
    rng = np.random.default_rng(9)
    base = [synthetic_run(rng, 100, 2.0, 0.5, 40), synthetic_run(rng, 100, 2.0, 0.5, 40)]
    cand = [synthetic_run(rng, 100, 1.9, 0.5, 40)]
    for metric in METRICS:
        assert compare(base, cand, metric, seed=3) == compare(base, cand, metric, seed=3)
    assert compare(base, cand, "p95", seed=3) != compare(base, cand, "p95", seed=4)


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
