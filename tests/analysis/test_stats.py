"""The within-run block bootstrap and the verdict rule: variance against independent runs, binned percentiles against
brute force, verdict truth table, input checks; block histograms counted in batches from the samples against the
in-memory series they replace."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from bookbench.analysis import block_hist, run_figures, sample_read, stats
from bookbench.analysis.stats import METRICS, RunSeries, verdict
from bookbench.artifacts import manifest
from tests.analysis.test_sample_scan import KNOWN, columnar_run


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


def _hist_as_before(second: np.ndarray, latency: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ece3cb7's RunSeries._block_hist, kept here as the reference: the counts built batch by batch must equal it."""
    bins = block_hist.grid_bin(latency)
    used = np.flatnonzero(np.bincount(bins, minlength=block_hist.HIST_BINS))
    column = np.zeros(block_hist.HIST_BINS, dtype=np.int64)
    column[used] = np.arange(used.size)
    blocks = int(second.max() - second.min() + 1)
    flat = np.bincount((second - second.min()) * used.size + column[bins], minlength=blocks * used.size)
    return used, flat.reshape(blocks, used.size).astype(np.float64)


def _steady_as_before(run_dir: Path) -> RunSeries:
    """ece3cb7's comparison.series from the raw rows: every steady (second, latency) pair, the last second cut."""
    df = sample_read.load_samples(KNOWN / "samples" / "known.csv.gz")
    start = float(df["ts"].min()) + float(manifest.read(run_dir).scenarios["known"].definition["warmup_s"])
    steady = df[df["ts"] >= start]
    second = np.floor(steady["ts"].to_numpy() - start).astype(np.int64)
    return RunSeries.from_arrays(second[second < second.max()], steady["latency_ms"].to_numpy()[second < second.max()])


@pytest.mark.parametrize("sorted_batches", [False, True], ids=["bincount", "sort"])
def test_block_counts_in_any_batches_equal_the_histogram_of_all_requests(
        monkeypatch: pytest.MonkeyPatch, sorted_batches: bool) -> None:
    if sorted_batches:  # what a long run's batches take: the matrix far larger than a batch
        monkeypatch.setattr(block_hist, "_BINCOUNT_MAX", 0)
    rng = np.random.default_rng(12)
    run = synthetic_run(rng, 80, 2.5, 1.2, 30)
    order = rng.permutation(run.requests)  # batches in an order of the engine's choosing
    counts = block_hist.BlockCounts(run.blocks + 5)  # room for seconds that never come: cut at the last one seen
    for part in np.array_split(order, 7):
        counts.add(run.second[part], run.latency_ms[part])
    bins, hist = counts.finish()
    before = _hist_as_before(run.second, run.latency_ms)
    assert np.array_equal(bins, before[0]) and np.array_equal(hist, before[1]) and hist.flags.c_contiguous
    assert np.array_equal(run.bins, before[0]) and np.array_equal(run.counts, before[1])
    with pytest.raises(ValueError, match=r"block indices must lie in \[0, 3\)"):
        block_hist.BlockCounts(3).add([0, 3], [1.0, 2.0])
    with pytest.raises(ValueError, match="finite"):
        block_hist.BlockCounts(3).add([0, 1], [1.0, float("inf")])


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_streamed_series_gives_the_in_memory_series_bootstrap_to_the_bit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    """A comparison's series, counted in batches straight from the samples (format 2 and format 3 in two processes'
    files), bootstraps exactly as the series of every steady request held in memory did before."""
    run = KNOWN if fmt == "csv" else columnar_run(tmp_path)
    monkeypatch.setattr(run_figures, "BATCH_ROWS", 128)  # several batches out of the engine
    streamed, before = run_figures.series(run, "known"), _steady_as_before(run)
    assert (streamed.requests, streamed.blocks) == (before.requests, before.blocks) == (990, 99)
    assert np.array_equal(streamed.bins, before.bins) and np.array_equal(streamed.counts, before.counts)
    for metric in METRICS:
        assert stats.within_run_log_variance(streamed, metric) == stats.within_run_log_variance(before, metric)
    with pytest.raises(AttributeError, match="block histogram, not its requests"):
        _ = streamed.latency_ms


def test_from_histogram_validates() -> None:
    with pytest.raises(ValueError, match="ascending"):
        RunSeries.from_histogram([5, 3], np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"blocks x 2 bins"):
        RunSeries.from_histogram([3, 5], np.ones((2, 3)))
    with pytest.raises(ValueError, match="non-negative"):
        RunSeries.from_histogram([3, 5], [[1.0, float("nan")], [1.0, 1.0]])
    with pytest.raises(ValueError, match="must hold a request"):
        RunSeries.from_histogram([3, 5], [[1.0, 0.0], [1.0, 0.0]])
    run = RunSeries.from_histogram([3, 5], [[1.0, 0.0], [2.0, 4.0]])
    assert (run.requests, run.blocks, run._block_counts.tolist()) == (7, 2, [1.0, 6.0])


def test_a_batch_is_read_in_place_and_an_empty_latency_is_named() -> None:
    batch = pa.record_batch({"block": pa.array([0, 1, 2], pa.int64()), "latency_ms": pa.array([1.5, None, 2.5])})
    assert run_figures._numbers(batch.slice(1), 0).tolist() == [1, 2]
    with pytest.raises(ValueError, match="latency_ms: 1 empty value"):
        run_figures._numbers(batch, 1)
    with pytest.raises(TypeError, match="not a 64-bit number"):
        run_figures._numbers(pa.record_batch({"block": pa.array([0], pa.int32())}), 0)
