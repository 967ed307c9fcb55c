"""A scenario's samples as one DuckDB view, scanned from its files: the analysis's out-of-core engine.

Why DuckDB (issue 28, measured with benchmarks/analysis_engines.py on a synthetic 10M-row format-3 folder, this
2-core machine shared with other jobs): the summary's hardest queries (exact P50/P95/P99/P99.9 + mean + max overall
and per request name, per-second counts and percentiles, the 200-point CDF and the histogram) took DuckDB 9.8 s at
395 MB peak RSS, Polars' streaming engine 171 s at 777 MB. Query by query DuckDB was faster too (overall 3.1 s
against 4.6 s, per name 3.3 s against 5.9 s, per second 3.4 s against 4.1 s), its `quantile_cont` takes a list of
quantiles in one aggregate where Polars evaluates one `quantile` expression per point (200 for the CDF), and its
sorts and windows spill to disk beyond a memory limit.

Exactness. percentiles() sorts (out of core) and picks the two order statistics around each percentile, then
interpolates as numpy.percentile's default (linear) method does: numpy's figure to the last bit. `quantile_cont`
(used where a group's values fit in memory: per second, and per name or batch up to summarize.IN_MEMORY_ROWS) has
numpy's index (n - 1) * q and neighbours but interpolates from the lower one where numpy, past a fraction of 0.5,
does from the upper: equal within the last bit (a relative 2e-16).

The rows are never held by Python: each query reads the Parquet files (only the columns it names) and keeps what
its groups need. Format 1/2 (one CSV.gz, parsed and checked by pandas as before) goes through the same view from
the frame, so that every figure has one code path.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

from bookbench.artifacts.samples import COLUMNS

if TYPE_CHECKING:  # imported where a frame is read (format 1/2, tests): 0.4 s off every other analysis
    import pandas as pd

# the view's columns and their types: the format-3 schema's, strings plain (DuckDB keeps Parquet's dictionaries
# internally), `end` the completion time every per-second figure is keyed on
_TYPES = {"ts": "DOUBLE", "latency_ms": "DOUBLE", "name": "VARCHAR", "method": "VARCHAR", "status": "BIGINT",
          "ok": "BIGINT", "error": "VARCHAR", "bytes": "BIGINT", "users": "BIGINT", "worker": "VARCHAR",
          "intended": "DOUBLE"}
# what DuckDB may hold before it spills a sort to disk; the per-group percentiles (quantile_cont) keep their groups'
# values in memory whatever this says (8 bytes a steady request), so it bounds the rest of the work
MEMORY_LIMIT = os.environ.get("BOOKBENCH_SCAN_MEMORY", "512MB")
THREADS = 2
_COLUMNS = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in _TYPES.items())


def quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Samples:
    """One scenario's samples, queried through DuckDB as the view `s` (every row, with `end`)."""

    def __init__(self, source: str, frame: pa.Table | None = None) -> None:
        # sorts beyond MEMORY_LIMIT go to a temporary folder of our own, removed on close: under TMPDIR, or
        # BOOKBENCH_SCAN_TMP where the system's temporary folder is memory (tmpfs), which spilling would then fill
        self.spill = tempfile.mkdtemp(prefix="bookbench-scan-", dir=os.environ.get("BOOKBENCH_SCAN_TMP") or None)
        try:
            self.con = duckdb.connect(config={"threads": THREADS, "preserve_insertion_order": False,
                                              "memory_limit": MEMORY_LIMIT, "temp_directory": self.spill})
        except BaseException:
            shutil.rmtree(self.spill, ignore_errors=True)
            raise
        try:
            self.con.execute("SET enable_progress_bar = false")  # a session option: it would draw on the terminal
            if frame is not None:
                self.con.register("raw", frame)
            self.con.execute(f'CREATE VIEW s AS SELECT {_COLUMNS}, ts + latency_ms / 1000.0 AS "end" FROM {source}')
            rows, t0, last, slowest = self.one("SELECT count(*), min(ts), max(\"end\"), max(latency_ms) FROM s")
        except BaseException:
            self.close()  # no caller holds it yet: its spill folder would stay behind
            raise
        self.rows = int(rows)
        self.t0 = float(t0) if rows else 0.0  # the first request's start
        self.last_end = float(last) if rows else 0.0
        self.slowest_s = float(slowest) / 1000.0 if rows else 0.0  # the longest latency, in seconds

    @classmethod
    def from_files(cls, paths: Sequence[Path]) -> Samples:
        if not paths:
            import pandas as pd

            return cls.from_frame(pd.DataFrame())
        listed = ", ".join(quoted(str(p)) for p in paths)
        return cls(f"read_parquet([{listed}])")

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> Samples:
        """A frame's rows (a format-2 file read by pandas, or a test's few rows); columns it lacks are empty."""
        import pandas as pd

        full = pd.DataFrame({c: (df[c] if c in df else pd.Series([None] * len(df), dtype=object, index=df.index))
                             for c in COLUMNS})
        # from_pandas: NaN in `intended` (format 1/2, the closed model) becomes NULL, as format 3 has it
        table = pa.Table.from_pandas(full, preserve_index=False)
        return cls("raw", table)

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self.spill, ignore_errors=True)

    def __enter__(self) -> Samples:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def all(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any] | None = None) -> tuple[Any, ...]:
        row = self.con.execute(sql, params).fetchone()
        assert row is not None  # an aggregate without GROUP BY always answers one row
        return row

    def arrays(self, sql: str, params: Sequence[Any] | None = None) -> dict[str, np.ndarray]:
        """A query's columns as numpy arrays (for the few figures that need the values themselves)."""
        return {k: np.asarray(v) for k, v in self.con.execute(sql, params).fetchnumpy().items()}

    def percentiles(self, expr: str, where: str, percents: Sequence[float]) -> list[float] | None:
        """numpy.percentile(values, percents) to the last bit (its default linear method), None without rows.
        One sort (out of core, memory bounded) picks the two order statistics around each percentile; they are
        then interpolated as numpy does, which rounds from the upper neighbour when the fraction is >= 0.5."""
        n = int(self.one(f"SELECT count(*) FROM s WHERE {where}")[0])
        if not n:
            return None
        # numpy's own index arithmetic: q / 100 in float64, virtual index (n - 1) * q, its floor and the next one
        index = (n - 1) * np.true_divide(np.asarray(percents, dtype=float), 100)
        below = np.floor(index)
        wanted = sorted({int(i) for i in below} | {min(int(i) + 1, n - 1) for i in below})
        picked = dict(self.all(f"SELECT i, x FROM (SELECT {expr} AS x, row_number() OVER (ORDER BY {expr}) - 1 AS i "
                               f"FROM s WHERE {where}) WHERE i IN ({', '.join(map(str, wanted))})"))
        out = []
        for vi, lo in zip(index, below, strict=True):
            if vi >= n - 1:  # numpy's bound: the largest value
                out.append(float(picked[n - 1]))
                continue
            a, b, t = float(picked[int(lo)]), float(picked[int(lo) + 1]), float(vi - lo)
            out.append(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)
        return out


@contextmanager
def scanning(data: Samples | pd.DataFrame) -> Iterator[Samples]:
    """`data` as Samples: itself, or a frame's rows for as long as the block runs (then closed)."""
    if isinstance(data, Samples):
        yield data
        return
    with Samples.from_frame(data) as sam:
        yield sam
