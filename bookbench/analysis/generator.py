"""Figures on the load's own side: the open model's (latency from the intended send time, send lateness, dropped
arrivals) and whether the load generator, not the service, set the pace (its processes' CPU, late sends)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from bookbench.analysis.latency_sql import MIN_SAMPLES, latency_stats, quantiles, steady
from bookbench.analysis.sample_scan import Samples, scanning
from bookbench.artifacts.summary import OpenModel

if TYPE_CHECKING:  # a frame only from tests and format-1/2 files
    import pandas as pd


def is_open(sam: Samples, where: str) -> bool:
    """Whether the requests carry intended send times (an open-model scenario)."""
    return bool(sam.one(f"SELECT count(*) FILTER (WHERE intended IS NOT NULL) > 0 FROM s WHERE {where}")[0])


def open_model(sam: Samples, steady: str, window_s: float, dropped: int = 0) -> OpenModel:
    """Open-model figures: latency from the intended send time (what a caller waiting since then sees) beside the
    service time, how late sends left, and the arrivals dropped for want of free capacity."""
    sent = f"{steady} AND intended IS NOT NULL"
    service = latency_stats(sam, "latency_ms", sent)
    intended = latency_stats(sam, '("end" - intended) * 1000.0', sent)
    late = latency_stats(sam, "(ts - intended) * 1000.0", sent)
    offered = int(sam.one(f"SELECT count(*) FROM s WHERE {sent}")[0]) + dropped
    p99, p99i = service.p99, intended.p99
    return OpenModel(
        latency_from_intended_ms=intended, send_lateness_ms=late,
        dropped=dropped, offered=offered,
        offered_rps=offered / window_s if window_s > 0 else 0.0,
        # the two latencies part when sends leave late (the generator fell behind, or every caller was busy):
        # service time alone would then hide the wait, as a closed model does (coordinated omission)
        diverged=bool(p99 and p99i and p99i > 1.5 * p99))


# the load generator was the bottleneck (issue 23 item 4) when one Locust process used at least this share of one
# core (gevent runs on one) ...
GENERATOR_BUSY_SHARE = 0.9
# ... in more than this fraction of the steady window's one-second samples (at least GENERATOR_MIN_SAMPLES of them)
GENERATOR_BUSY_MOST = 0.5
GENERATOR_MIN_SAMPLES = 2
# or when open-model sends left late: P95 of (first send of an arrival - its intended time) above this bound. A
# free generator sends within a few ms; 50 ms late is a tenth of a typical P95 threshold, and beyond it the
# latency from the intended time is mostly the generator's wait
LATENESS_P95_BOUND_MS = 50.0


def generator_figures(cpu: dict[str, Any] | None, data: Samples | pd.DataFrame, warmup_s: float) -> dict[str, Any]:
    """`generator`: each Locust process's CPU over the steady window (share of one core) and, in the open model,
    send lateness per arrival; `generator_saturated` with its reason when either says the generator, not the
    service, set the pace."""
    with scanning(data) as sam:
        return _generator(cpu, sam, warmup_s)


def _generator(cpu: dict[str, Any] | None, sam: Samples, warmup_s: float) -> dict[str, Any]:
    if not sam.rows:
        return {"generator": None, "generator_saturated": False, "generator_saturated_reason": None}
    start = sam.t0 + warmup_s
    end = sam.last_end
    reasons: list[str] = []
    procs: dict[str, Any] | None = None
    if cpu:
        every = float(cpu.get("interval_s", 1.0))
        procs = {}
        for label, series in cpu["processes"].items():
            # a sample covers the second before its time: those wholly or mostly inside the steady window
            shares = np.array([s for t, s in series if t - every / 2 >= start and t - every / 2 <= end], dtype=float)
            busy = float((shares >= GENERATOR_BUSY_SHARE).mean()) if shares.size else 0.0
            procs[label] = {"samples": int(shares.size), "busy_fraction": busy,
                            "mean_share": float(shares.mean()) if shares.size else None,
                            "max_share": float(shares.max()) if shares.size else None}
            if shares.size >= GENERATOR_MIN_SAMPLES and busy > GENERATOR_BUSY_MOST:
                reasons.append(f"Locust {label} used over {100 * GENERATOR_BUSY_SHARE:.0f} % of a core in "
                               f"{100 * busy:.0f} % of the steady window (mean {100 * float(shares.mean()):.0f} %)")
    st = steady(sam, warmup_s)
    lateness = _lateness(sam, st) if is_open(sam, "TRUE") else None
    if lateness and lateness["arrivals"] >= MIN_SAMPLES["p95"] and lateness["p95"] > LATENESS_P95_BOUND_MS:
        reasons.append(f"open-model sends left late: P95 {lateness['p95']:.0f} ms after their intended time "
                       f"(bound {LATENESS_P95_BOUND_MS:.0f} ms)")
    figures = None if procs is None and lateness is None else {
        "cpu": procs, "lateness_ms": lateness, "busy_share": GENERATOR_BUSY_SHARE,
        "lateness_bound_ms": LATENESS_P95_BOUND_MS}
    return {"generator": figures, "generator_saturated": bool(reasons),
            "generator_saturated_reason": "; ".join(reasons) or None}


def _lateness(sam: Samples, steady: str) -> dict[str, Any] | None:
    """How late each arrival's first request left (a login before the operation must not count the login's
    latency as lateness): P50, P95, max in ms."""
    n, qs, top = sam.one(f"""
        WITH a AS (SELECT (min(ts) - intended) * 1000.0 AS late FROM s WHERE {steady} AND intended IS NOT NULL
                   GROUP BY intended)
        SELECT count(*), quantile_cont(late, {quantiles([50, 95])}), max(late) FROM a""")
    if not n:
        return None
    return {"arrivals": int(n), "p50": float(qs[0]), "p95": float(qs[1]), "max": float(top)}
