"""The SQL pieces the samples' figures are built from: exact double literals, numpy's quantiles as DuckDB's list,
the steady-window condition, and a Latency from a query's mean, percentiles and max."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bookbench.analysis.sample_scan import Samples
from bookbench.artifacts.summary import Latency

PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
# pyperf-style noise rules: a percentile needs enough samples beyond it to mean anything
MIN_SAMPLES = {"p95": 20, "p99": 100, "p999": 1000}


def num(x: float) -> str:
    """A float as an exact SQL double: a plain literal would be a DECIMAL, rounded on its way to a double."""
    return f"'{float(x)!r}'::DOUBLE"


def quantiles(values: Sequence[float]) -> str:
    """numpy's q / 100 for each percentile, as DuckDB's list of doubles (numpy divides the same way)."""
    return "[" + ", ".join(num(float(np.true_divide(v, 100))) for v in values) + "]"


def steady(sam: Samples, warmup_s: float) -> str:
    """The requests that started after the warm-up (the first `warmup_s` seconds after the first request), as a
    condition on the view."""
    return f"ts >= {num(sam.t0 + warmup_s)}"


def latency_stats(sam: Samples, expr: str = "latency_ms", where: str = "TRUE") -> Latency:
    """Mean, exact P50/P95/P99/P99.9 and max of `expr` over the rows `where` holds."""
    mean, top = sam.one(f"SELECT avg({expr}), max({expr}) FROM s WHERE {where}")
    return as_latency(mean, sam.percentiles(expr, where, list(PERCENTILES.values())), top)


def as_latency(mean: float | None, qs: list[float] | None, top: float | None) -> Latency:
    if qs is None:
        return Latency(mean=None, p50=None, p95=None, p99=None, p999=None, max=None)
    p50, p95, p99, p999 = (float(q) for q in qs)
    return Latency(mean=float(mean) if mean is not None else None, p50=p50, p95=p95, p99=p99, p999=p999,
                   max=float(top) if top is not None else None)
