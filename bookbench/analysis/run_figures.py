"""One run's figures for a comparison: each metric as the run's report states it, with its within-run spread from
the block bootstrap over the run's block histogram, which is streamed from the samples (never the requests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from bookbench.analysis import block_hist, inference, sample_read, stats
from bookbench.analysis.latency_sql import num, steady
from bookbench.artifacts import manifest as manifest_file
from bookbench.artifacts import summary as summary_file

# rows per batch fetched from the engine (its own default): 2 MB of (block, latency) and a few of its size in numpy
# temporaries. Measured on a 10M-row run (benchmarks/test_compare_scale.py): batches of 1M rows added ~70 MB to the
# peak, as the engine makes the next batches while one is counted; 131,072 rows ~20 MB, and smaller no less
BATCH_ROWS = 131_072
_NUMPY = {pa.int64(): np.int64, pa.float64(): np.float64}


def series(run_dir: Path, scenario: str) -> stats.RunSeries:
    """A scenario's steady-state requests counted per (1-second window, latency grid bin) for the bootstrap. Only
    the start time and latency of the steady window are read, in batches of BATCH_ROWS: memory grows with the
    run's seconds x the grid bins it used, not with its requests (issue 28)."""
    entry = manifest_file.read(run_dir).scenarios[scenario]
    warmup_s = float(entry.definition.get("warmup_s", 0))
    with sample_read.open_samples(run_dir, scenario, entry) as sam:
        if not sam.rows:
            return stats.RunSeries.from_arrays([], [])
        second = f"CAST(floor(ts - {num(sam.t0 + warmup_s)}) AS BIGINT)"
        window = steady(sam, warmup_s)
        first, last = sam.one(f"SELECT min({second}), max({second}) FROM s WHERE {window}")
        if first is None:  # nothing after the warm-up
            return stats.RunSeries.from_arrays([], [])
        # the last second is cut short by the end of the scenario: counting it as a whole window would understate
        # throughput, so only whole seconds enter (throughput here = requests per whole 1-second window)
        counts = block_hist.BlockCounts(int(last) - int(first))
        sam.con.complete()  # Samples.one reads one row of its result; a streamed query needs the connection free
        found = sam.con.sql(f"SELECT {second} - {int(first)} AS block, latency_ms FROM s "
                            f"WHERE {window} AND {second} < {int(last)}").to_arrow_reader(BATCH_ROWS)
        for batch in found:
            # counts do not depend on the order the engine reads the files in (in parallel): the bootstrap's draws
            # are the same every time the same run is compared
            counts.add(_numbers(batch, 0), _numbers(batch, 1))
            del batch  # not held while the engine makes the next one
    return stats.RunSeries.from_histogram(*counts.finish())


def _numbers(batch: pa.RecordBatch, i: int) -> npt.NDArray[Any]:
    """A batch's column of 64-bit numbers as a numpy view of its buffer. Not Array.to_numpy(): that imports pandas,
    ~45 MB and 0.4 s in a process that never needs it (measured on a 1M-row run's figures)."""
    column, name = batch.column(i), batch.schema.names[i]
    dtype = _NUMPY.get(column.type)
    if dtype is None:
        raise TypeError(f"{name}: the engine gave {column.type}, not a 64-bit number")
    if column.null_count:  # a start time or latency the samples file left empty: named, not read as garbage
        raise ValueError(f"{name}: {column.null_count:,} empty value(s) in the steady window")
    return np.frombuffer(column.buffers()[1], dtype=dtype, count=len(column), offset=column.offset * 8)


def figures(run_dir: Path, scenario: str, n_boot: int) -> dict[str, inference.RunFigure | str]:
    """One run's figures per metric exactly as its report states them (summary.json), each with its within-run
    spread from the block bootstrap; a metric that cannot be compared maps to the reason."""
    sc = summary_file.read(run_dir).scenarios.get(scenario)
    if not sc or not sc.requests:
        return dict.fromkeys(stats.METRICS, f"{run_dir.name}: no samples in {scenario}")
    try:
        blocks = series(run_dir, scenario)
    except ValueError as exc:  # a sample the summary let through but the grid cannot place: named, not a traceback
        return dict.fromkeys(stats.METRICS, f"{run_dir.name}: {scenario}: {exc}")
    out: dict[str, inference.RunFigure | str] = {}
    for metric in stats.METRICS:
        value = sc.throughput_rps if metric == "throughput" else getattr(sc.latency_ms, metric)
        try:
            within = stats.within_run_log_variance(blocks, metric, n_boot=n_boot)
        except ValueError as exc:
            out[metric] = f"{run_dir.name}: {exc}"
            continue
        out[metric] = inference.RunFigure(value=float(value), within_var=within, requests=sc.requests,
                                          blocks=blocks.blocks)
    return out
