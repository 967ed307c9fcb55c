"""Within-run block bootstrap: how much a run's latency percentiles and throughput would move if its 1-second
windows had come out differently. bookbench.analysis.inference uses it as the floor under run-to-run variance."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from bookbench.analysis import block_hist
from bookbench.analysis.block_hist import HIST_LOW_MS, LOG_RATIO, FloatArray, IntArray

METRICS = ("p50", "p95", "p99", "throughput")
PERCENTILE_OF = {"p50": 50.0, "p95": 95.0, "p99": 99.0}
LOWER_IS_BETTER = frozenset(PERCENTILE_OF)  # latency: lower is better; throughput: higher is better

VERDICTS = ("improved", "regressed", "within noise", "no change")

MIN_REQUESTS = 20
MIN_BLOCKS = 3

# Grid bins per coarse group in the two-stage percentile search (64 bins = a factor of ~1.29 in latency).
_COARSE = 64
# Resamples that draw only empty seconds have no percentile; a few are dropped, too many mean the data is too sparse.
_MIN_VALID_FRACTION = 0.9


@dataclass(frozen=True, eq=False)  # eq=False: element-wise array comparison has no truth value; identity is enough
class RunSeries:
    """One run's steady-state requests of one scenario as the bootstrap reads them: per 1-second window (block), how
    many fell in each used bin of the latency grid (bookbench.analysis.block_hist).

    from_histogram takes counts built batch by batch from the samples (a comparison: the requests are never held,
    memory grows with seconds x used bins); from_arrays counts arrays of requests the same way and also keeps them
    (tests, tools: `second` and `latency_ms`).
    """

    bins: IntArray  # grid bins the run used, ascending
    counts: FloatArray  # blocks x len(bins), C order: the matrix the replicates are multiplied with
    samples: tuple[IntArray, FloatArray] | None = None  # (second, latency_ms) when built from_arrays

    @classmethod
    def from_arrays(cls, second: npt.ArrayLike, latency_ms: npt.ArrayLike) -> RunSeries:
        sec = np.asarray(second)
        lat = np.asarray(latency_ms, dtype=np.float64)
        if sec.ndim != 1 or lat.ndim != 1 or sec.shape != lat.shape:
            raise ValueError(f"second and latency_ms must be 1-D and of equal length, got {sec.shape} and {lat.shape}")
        if sec.size and not np.all(np.equal(np.mod(sec, 1), 0)):
            raise ValueError("second must hold whole 1-second window indices")
        block_hist.check_latency(lat)
        sec = sec.astype(np.int64)
        first = int(sec.min()) if sec.size else 0
        counts = block_hist.BlockCounts(int(sec.max()) - first + 1 if sec.size else 0)
        counts.add(sec - first, lat)
        return cls(*counts.finish(), samples=(sec, lat))

    @classmethod
    def from_histogram(cls, bins: npt.ArrayLike, counts: npt.ArrayLike) -> RunSeries:
        """A run from its block histogram (block_hist.BlockCounts.finish): every column a used bin."""
        used = np.asarray(bins)
        hist = np.ascontiguousarray(counts, dtype=np.float64)
        if used.ndim != 1 or not np.issubdtype(used.dtype, np.integer):
            raise ValueError(f"bins must be a 1-D array of grid bins, got {used.dtype} of shape {used.shape}")
        if used.size and (int(used[0]) < 0 or int(used[-1]) >= block_hist.HIST_BINS or np.any(np.diff(used) <= 0)):
            raise ValueError(f"bins must be ascending grid bins in [0, {block_hist.HIST_BINS})")
        if hist.ndim != 2 or hist.shape[1] != used.size:
            raise ValueError(f"counts must be blocks x {used.size} bins, got shape {hist.shape}")
        # min/max, not element-wise tests: no temporary as large as the matrix (NaN fails `>= 0` too)
        if hist.size and not (float(hist.min()) >= 0 and math.isfinite(float(hist.max()))):
            raise ValueError("counts must be finite and non-negative")
        if hist.size and not np.all(hist.sum(axis=0) > 0):
            raise ValueError("every bin listed must hold a request")
        return cls(bins=used.astype(np.int64), counts=hist)

    @property
    def second(self) -> IntArray:
        return self._samples()[0]

    @property
    def latency_ms(self) -> FloatArray:
        return self._samples()[1]

    def _samples(self) -> tuple[IntArray, FloatArray]:
        if self.samples is None:
            raise AttributeError("this run series holds its block histogram, not its requests (from_histogram)")
        return self.samples

    @cached_property
    def requests(self) -> int:
        return int(self._block_counts.sum())

    @property
    def blocks(self) -> int:
        """Windows from the first to the last second, empty ones included: an idle second is part of the run."""
        return int(self.counts.shape[0])

    @cached_property
    def _block_counts(self) -> FloatArray:
        # sums of whole numbers far below 2**53: exact in any order, the requests of each block
        block: FloatArray = self.counts.sum(axis=1)
        return block

    @property
    def _block_hist(self) -> tuple[IntArray, FloatArray]:
        """(grid bins used by this run, blocks x used-bins count matrix).

        Only the bins the run actually uses are kept as columns: a latency distribution spans a few hundred to a
        couple of thousand of the 4096 bins, and an hour-long run has 3600 blocks.
        """
        return self.bins, self.counts


def _check_variant(runs: Sequence[RunSeries], side: str) -> None:
    if len(runs) == 0:
        raise ValueError(f"{side}: no runs")
    for i, run in enumerate(runs):
        if run.requests == 0:
            raise ValueError(f"{side}: run {i + 1} of {len(runs)} has no samples")
    requests = sum(r.requests for r in runs)
    blocks = sum(r.blocks for r in runs)
    if requests < MIN_REQUESTS or blocks < MIN_BLOCKS:
        raise ValueError(f"{side}: too few samples to compare ({requests} requests in {blocks} one-second windows; "
                         f"needs >= {MIN_REQUESTS} requests and >= {MIN_BLOCKS} windows)")


def _weights(runs: Sequence[RunSeries], n_boot: int, rng: np.random.Generator) -> FloatArray:
    """Replicates x blocks-of-all-runs matrix: how often each 1-second block is drawn in each replicate.

    Two-level bootstrap: draw the runs with replacement, then the blocks of each drawn run with replacement. A run
    drawn k times in a replicate gets k * n_r uniform block draws there (k independent block resamples pooled), so
    per run one flat vector of random block indices, tallied per replicate with bincount, covers all replicates
    (several times faster than Generator.multinomial, which draws one binomial per block and replicate).
    With one run k is always 1 and this is the plain block bootstrap.
    """
    n_runs = len(runs)
    picks = rng.multinomial(n_runs, np.full(n_runs, 1.0 / n_runs), size=n_boot)  # (n_boot, n_runs)
    parts = []
    for i, run in enumerate(runs):
        n = run.blocks
        replicate = np.repeat(np.arange(n_boot), picks[:, i] * n)
        block = rng.integers(0, n, size=replicate.size)
        parts.append(np.bincount(replicate * n + block, minlength=n_boot * n).reshape(n_boot, n))
    return np.concatenate(parts, axis=1).astype(np.float64)


def _variant_hist(runs: Sequence[RunSeries]) -> tuple[IntArray, FloatArray]:
    """Stack the runs' block histograms on the union of their used bins."""
    if len(runs) == 1:
        return runs[0]._block_hist
    union = np.unique(np.concatenate([r._block_hist[0] for r in runs]))
    out = np.zeros((sum(r.blocks for r in runs), union.size))
    row = 0
    for run in runs:
        used, hist = run._block_hist
        out[row:row + run.blocks, np.searchsorted(union, used)] = hist
        row += run.blocks
    return union, out


def _locate(counts: FloatArray, rank: FloatArray) -> tuple[IntArray, FloatArray]:
    """Per row, the column holding the sample of fractional 0-based rank `rank`, and the count before that column."""
    cum = np.cumsum(counts, axis=1)
    idx = np.minimum(np.count_nonzero(cum <= rank[:, None], axis=1), counts.shape[1] - 1)
    before = np.where(idx > 0, cum[np.arange(counts.shape[0]), np.maximum(idx - 1, 0)], 0.0)
    return idx, before


def _replicate_percentiles(weights: FloatArray, bins: IntArray, hist: FloatArray, q: float) -> FloatArray:
    """The q-th percentile of each replicate's distribution (weights @ hist), the way numpy's linear method takes it.

    numpy interpolates between the order statistics of ranks floor(h) and floor(h) + 1, h = q/100 * (n - 1); both
    are located in the binned distribution and interpolated the same way. Locating each rank separately matters in
    sparse tails, where neighbouring samples lie many bins apart. The c samples of a fine bin are taken as evenly
    spread across it, geometrically as the bins are: the k-th (0-based) at fraction (k + 0.5) / c.

    Two stages, so that the full replicates x bins product is never formed: coarse groups of _COARSE grid bins
    locate the group holding each rank; then only that group's fine bins are multiplied out, for the replicates that
    need it (one percentile's replicates fall into one or two groups). Empty replicates give NaN.
    """
    starts = np.flatnonzero(np.r_[True, np.diff(bins // _COARSE) != 0])
    ends = np.r_[starts[1:], bins.size]
    coarse = weights @ np.add.reduceat(hist, starts, axis=1)
    total = coarse.sum(axis=1)
    valid = total > 0
    last = np.maximum(total - 1.0, 0.0)
    rank = q / 100.0 * last
    ranks = (np.floor(rank), np.minimum(np.floor(rank) + 1.0, last))
    located = [_locate(coarse, r) for r in ranks]
    values = (np.full(weights.shape[0], np.nan), np.full(weights.shape[0], np.nan))
    for g in np.unique(np.concatenate([group[valid] for group, _ in located])):
        rows = np.flatnonzero(valid & ((located[0][0] == g) | (located[1][0] == g)))
        fine = weights[rows] @ hist[:, starts[g]:ends[g]]
        for r, (group, before), out in zip(ranks, located, values, strict=True):
            here = group[rows] == g
            inner = r[rows[here]] - before[rows[here]]
            idx, inner_before = _locate(fine[here], inner)
            frac = (inner - inner_before + 0.5) / fine[here][np.arange(idx.size), idx]
            out[rows[here]] = HIST_LOW_MS * np.exp((bins[starts[g] + idx] + frac) * LOG_RATIO)
    result: FloatArray = values[0] + (rank - ranks[0]) * (values[1] - values[0])
    return result


def _replicates(runs: Sequence[RunSeries], metric: str, n_boot: int, rng: np.random.Generator) -> FloatArray:
    weights = _weights(runs, n_boot, rng)
    if metric == "throughput":
        counts = np.concatenate([r._block_counts for r in runs])
        per_second: FloatArray = (weights @ counts) / weights.sum(axis=1)
        return per_second
    # never materialise resampled raw samples: a replicate's distribution is its block weights times the block
    # histograms
    bins, hist = _variant_hist(runs)
    return _replicate_percentiles(weights, bins, hist, PERCENTILE_OF[metric])


def t_quantile(p: float, df: float) -> float:
    """Student's t quantile. From scipy.special, imported here: scipy.stats (t.ppf, the same figure) costs ~1 CPU-s
    to import, scipy.special half that, and every command that analyses a run (run, report, review) imports this
    module whether it compares or not."""
    from scipy.special import stdtrit

    return float(stdtrit(df, p))


def verdict(metric: str, low: float, high: float, noise: float) -> str:
    """Criterion-style verdict on a ratio CI [low, high] with noise threshold `noise` (0.05 = 5 %).

    "improved"/"regressed" only when the whole interval lies beyond the threshold; "no change" when it contains 1;
    otherwise "within noise": a change is detectable but not clearly larger than the threshold.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    if not 0 <= noise < 1:
        raise ValueError(f"noise threshold must be in [0, 1), got {noise}")
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise ValueError(f"invalid interval [{low}, {high}]")
    below, above = high < 1 - noise, low > 1 + noise
    if below or above:
        good = below if metric in LOWER_IS_BETTER else above
        return "improved" if good else "regressed"
    if low <= 1.0 <= high:
        return "no change"
    return "within noise"


def within_run_log_variance(run: RunSeries, metric: str, n_boot: int = 500, seed: int = 0) -> float:
    """Variance of log(metric) over block-bootstrap resamples of one run: how much the run's own figure would
    move if its seconds had come out differently. The run-to-run inference uses it as a floor."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {METRICS}")
    _check_variant([run], "run")
    rep = _replicates([run], metric, n_boot, np.random.default_rng(seed))
    rep = rep[np.isfinite(rep) & (rep > 0)]
    if rep.size < _MIN_VALID_FRACTION * n_boot:
        raise ValueError(f"{metric}: the run is too sparse (mostly empty seconds) for a block bootstrap")
    return float(np.var(np.log(rep), ddof=1))
