"""A run's requests counted per 1-second block and bin of the fixed latency grid, fed in batches: what the within-run
block bootstrap (bookbench.analysis.stats) needs of a run, built in memory that grows with seconds x used bins,
never with the number of requests (issue 28)."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]

# Fixed log-spaced latency grid shared by every run, so block histograms of different runs add up column by column.
# 4096 bins over 0.01 ms .. 120 s give a bin ratio of ~1.004: quantization below 0.4 %, far under any verdict
# threshold, and the same grid on both sides so the quantization largely cancels in the ratio.
HIST_LOW_MS = 0.01
HIST_HIGH_MS = 120_000.0
HIST_BINS = 4096
LOG_RATIO = math.log(HIST_HIGH_MS / HIST_LOW_MS) / HIST_BINS
# rows of the accumulator turned into the float matrix at a time (finish): a small temporary
_ROWS_PER_COPY = 256
# a batch is counted with one bincount over the whole matrix up to this many cells (an 8 MB temporary), or twice its
# rows; beyond, with a sort of the batch (slower, but its temporaries never grow with the run)
_BINCOUNT_MAX = 1 << 20


def grid_bin(latency_ms: FloatArray) -> IntArray:
    """Each latency's bin on the grid. Every histogram of a comparison goes through this one function, so a
    request lands in the same bin however its run was read."""
    # values outside the grid go to the edge bins: sub-10 µs and over-2-minute requests are not worth more bins
    clipped = np.clip(latency_ms, HIST_LOW_MS, HIST_HIGH_MS)
    idx = np.floor(np.log(clipped / HIST_LOW_MS) / LOG_RATIO).astype(np.int64)
    return np.minimum(idx, HIST_BINS - 1)


def check_latency(latency_ms: FloatArray) -> None:
    if not np.all(np.isfinite(latency_ms)) or (latency_ms.size and float(latency_ms.min()) < 0):
        raise ValueError("latency_ms must be finite and non-negative")


class BlockCounts:
    """Requests per (block, grid bin) of one run, added batch by batch in any order.

    Held as a blocks x columns int32 matrix with one column per grid bin the run has used so far, in the order the
    bins were first seen (a run uses a few hundred to a couple of thousand of the 4096 bins); columns are added with
    room to spare, so a bin first seen late rarely copies the rest. int32: a count is the requests of one second in
    one 0.4 % wide latency bin, far below 2**31.
    """

    def __init__(self, blocks: int) -> None:
        if blocks < 0:
            raise ValueError(f"blocks must be >= 0, got {blocks}")
        self.blocks = blocks
        self._column = np.full(HIST_BINS, -1, dtype=np.int64)  # grid bin -> its column, -1 while unused
        self._bins: list[int] = []  # the bin of each column
        self._counts = np.zeros((blocks, 0), dtype=np.int32)
        self._seen = 0  # 1 + the highest block that received a request

    def add(self, block: npt.ArrayLike, latency_ms: npt.ArrayLike) -> None:
        """Count a batch: each request's block (0-based, < blocks) and latency."""
        blk = np.asarray(block)
        lat = np.asarray(latency_ms, dtype=np.float64)
        if blk.ndim != 1 or lat.ndim != 1 or blk.shape != lat.shape:
            raise ValueError(f"block and latency_ms must be 1-D and of equal length, got {blk.shape} and {lat.shape}")
        if blk.size == 0:
            return
        if not np.issubdtype(blk.dtype, np.integer):
            raise ValueError(f"block must hold whole block indices, got {blk.dtype}")
        check_latency(lat)
        low, high = int(blk.min()), int(blk.max())
        if low < 0 or high >= self.blocks:
            raise ValueError(f"block indices must lie in [0, {self.blocks}), got {low} .. {high}")
        bins = grid_bin(lat)
        seen = np.flatnonzero(np.bincount(bins, minlength=HIST_BINS))
        new = seen[self._column[seen] < 0]
        if new.size:
            self._add_columns(new)
        flat = self._counts.reshape(-1)  # a view: the matrix is C-contiguous
        keys = blk.astype(np.int64) * self._counts.shape[1] + self._column[bins]
        if flat.size <= max(2 * keys.size, _BINCOUNT_MAX):  # one bincount: its temporary is small or the batch's
            np.add(flat, np.bincount(keys, minlength=flat.size), out=flat, casting="unsafe")
        else:  # one sort of the batch: temporaries grow with the batch, never with the run
            keys, counts = np.unique(keys, return_counts=True)
            flat[keys] += counts.astype(np.int32)
        self._seen = max(self._seen, high + 1)

    def _add_columns(self, bins: IntArray) -> None:
        used, room = len(self._bins), self._counts.shape[1]
        if used + bins.size > room:
            wider = np.zeros((self.blocks, min(HIST_BINS, max(used + bins.size + 64, room + room // 2))),
                             dtype=np.int32)
            wider[:, :used] = self._counts[:, :used]
            self._counts = wider
        self._column[bins] = np.arange(used, used + bins.size)
        self._bins.extend(bins.tolist())

    def finish(self) -> tuple[IntArray, FloatArray]:
        """(grid bins used, ascending; blocks x used-bins float64 count matrix, C order), the blocks ending at the
        last one that received a request. Copied over a few rows at a time, so no temporary as large as the matrix."""
        order = np.argsort(np.array(self._bins, dtype=np.int64))
        used = np.array(self._bins, dtype=np.int64)[order]
        hist = np.empty((self._seen, used.size), dtype=np.float64)
        for start in range(0, self._seen, _ROWS_PER_COPY):
            end = min(start + _ROWS_PER_COPY, self._seen)
            hist[start:end] = self._counts[start:end, order]
        return used, hist
