"""Exact statistics from a run folder's raw samples -> summary.json. Never imports locust.

Method (so anyone can reproduce a figure with one line of numpy): per scenario, drop the requests that started in
the first `warmup_s` seconds after the scenario's first request; percentiles are numpy.percentile with its
default linear interpolation over every remaining request (failed ones included, as a caller waits for those too);
throughput is completed requests divided by the steady window, from the end of the warm-up to the last completion.

The samples are never loaded: every figure is a query of the engine (sample_scan: DuckDB over the files), so that
memory grows with the groups (seconds, request names, batches), not with the requests.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bookbench.analysis import notifications as notify
from bookbench.analysis.error_groups import errors_by_count
from bookbench.analysis.generator import LATENESS_P95_BOUND_MS as LATENESS_P95_BOUND_MS  # tests read it here
from bookbench.analysis.generator import generator_figures as generator_figures  # tests read it here
from bookbench.analysis.generator import is_open, open_model
from bookbench.analysis.latency_sql import MIN_SAMPLES, PERCENTILES, as_latency, quantiles
from bookbench.analysis.latency_sql import num as num  # run_figures reads it here
from bookbench.analysis.latency_sql import steady as steady  # run_figures and tests read it here
from bookbench.analysis.sample_read import load_checked
from bookbench.analysis.sample_read import load_samples as load_samples  # tests and tools read samples from here
from bookbench.analysis.sample_scan import Samples, quoted, scanning
from bookbench.artifacts import manifest
from bookbench.artifacts.folder import RunFolder
from bookbench.artifacts.manifest import ScenarioEntry
from bookbench.artifacts.run_files import read_dropped
from bookbench.artifacts.summary import (
    Batch,
    Batches,
    Counts,
    Distribution,
    Drift,
    Gap,
    Histogram,
    SamplesFile,
    ScenarioSummary,
    Stall,
    Summary,
    TimePoint,
    Trend,
)
from bookbench.config.shape import batch_edges

if TYPE_CHECKING:  # pandas only where a format-1/2 file or a test's frame needs it (0.4 s off every analysis)
    import pandas as pd

CDF_POINTS = 200
HIST_BINS = 60
DRIFT_RELATIVE_SLOPE = 0.05  # a batch-to-batch trend above 5 % of the mean per batch is a drift


def _counts_query(where: str) -> str:
    """Counts' figures but the percentiles: requests, failures, availability's downs, mean and max latency."""
    # availability: answered at all, and not with a server error (a 409 or 404 is the service working)
    return ("SELECT count(*), count(*) FILTER (WHERE ok = 0), count(*) FILTER (WHERE status = 0 OR status >= 500), "
            f"avg(latency_ms), NULL, max(latency_ms) FROM s WHERE {where}")


# up to this many steady requests, the groups' percentiles (per request name, per batch) come from one pass in
# memory (quantile_cont: 8 bytes a request, equal to numpy's within its last bit); beyond, each group's are sorted
# out of core on their own (Samples.percentiles: memory bounded, numpy's to the last bit, one scan per group)
IN_MEMORY_ROWS = 20_000_000


def _grouped(sam: Samples, where: str, rows: int, key: str, groups: dict[str, str],
             windows: dict[str, float]) -> dict[str, Counts]:
    """Counts per group: `groups` maps each group to its condition, `key` is the SQL expression naming a row's
    group (the same partition, in one pass)."""
    if rows > IN_MEMORY_ROWS:
        return {g: _counts(sam, f"{where} AND {cond}", windows[g]) for g, cond in groups.items()}
    found = {str(k): rest for k, *rest in sam.all(
        f"SELECT CAST({key} AS VARCHAR) AS k, count(*), count(*) FILTER (WHERE ok = 0), count(*) FILTER "
        f"(WHERE status = 0 OR status >= 500), avg(latency_ms), quantile_cont(latency_ms, "
        f"{quantiles(list(PERCENTILES.values()))}), max(latency_ms) FROM s WHERE {where} GROUP BY k")}
    return {g: _as_counts(found.get(g, (0, 0, 0, None, None, None)), windows[g]) for g in groups}


def _as_counts(row: Sequence[Any], window_s: float) -> Counts:
    """A row of _counts_query (after its group key) as Counts over a window of `window_s`."""
    n, failures, down, mean, qs, top = row
    return Counts(requests=n, failures=failures, error_rate=failures / n if n else 0.0,
                  availability=1 - down / n if n else None,
                  throughput_rps=n / window_s if window_s > 0 else 0.0, latency_ms=as_latency(mean, qs, top))


def _counts(sam: Samples, where: str, window_s: float, percentiles: list[float] | bool | None = True) -> Counts:
    """The Counts of the rows `where` holds; their percentiles sorted out of core (Samples.percentiles), unless
    computed beforehand."""
    n, failures, down, mean, _, top = sam.one(_counts_query(where))
    if percentiles is True:
        percentiles = sam.percentiles("latency_ms", where, list(PERCENTILES.values())) if n else None
    return _as_counts((n, failures, down, mean, percentiles or None, top), window_s)


def _second(t0: float) -> str:
    return f'CAST(floor("end" - {num(t0)}) AS BIGINT)'


def _timeseries(sam: Samples) -> list[TimePoint]:
    """1-second windows by completion time: req/s, errors/s, P50/P95/P99, active users."""
    if not sam.rows:
        return []
    sec = _second(sam.t0)
    last = int(np.floor(sam.last_end - sam.t0))
    # a span of seconds at a time, so that the percentiles hold about SERIES_CHUNK_ROWS values, never the run's;
    # the bounds on `ts` (a request ends after it starts, by at most the slowest latency) let the engine skip
    # the files' row groups outside the span
    width = max(1, int(SERIES_CHUNK_ROWS * (last + 1) / sam.rows))
    rows = []
    for a in range(0, last + 1, width):
        b = a + width
        span = (f"{sec} >= {a} AND {sec} < {b} AND ts < {num(sam.t0 + b + 1)} "
                f"AND ts >= {num(sam.t0 + a - sam.slowest_s - 1)}")
        # each Locust worker reports its own users: the total is the sum of the workers' counts
        rows += sam.all(f"""
            WITH per AS (SELECT {sec} AS t, count(*) AS n, count(*) FILTER (WHERE ok = 0) AS errors,
                                quantile_cont(latency_ms, {quantiles([50, 95, 99])}) AS q FROM s WHERE {span}
                         GROUP BY t),
                 users AS (SELECT t, sum(top) AS users FROM (SELECT {sec} AS t, worker, max(users) AS top FROM s
                                                             WHERE {span} GROUP BY t, worker) GROUP BY t)
            SELECT per.t, n, errors, q, users FROM per JOIN users USING (t) ORDER BY per.t""")
    by_second = {int(t): TimePoint(t=int(t), rps=int(n), errors=int(e), p50=float(q[0]), p95=float(q[1]),
                                   p99=float(q[2]), users=int(u)) for t, n, e, q, u in rows}
    # a second in which nothing completed is a point of its own (0 req/s, no latency), so that a stall shows as
    # one in the charts and in the stability check instead of being bridged; its users are those around it
    out = []
    users = next(iter(by_second.values())).users
    for second in range(0, max(by_second) + 1):
        point = by_second.get(second) or TimePoint(t=second, rps=0, errors=0, p50=None, p95=None, p99=None,
                                                   users=users)
        users = point.users
        out.append(point)
    return out


def stalls(sam: Samples, warmup_s: float, load_end_s: float | None) -> Stall | None:
    """The longest time without a completed request inside the load window: from the end of the warm-up to the
    planned end (`load_end_s` after the first request; None: a scenario that ended early, up to its last
    completion). Also every gap of at least STALL_LISTED_S, the longest first (at most STALLS_LISTED)."""
    if not sam.rows:
        return None
    stop = load_end_s if load_end_s is not None else sam.last_end - sam.t0
    if stop <= warmup_s:
        return None
    # the completions inside the window in order, bounded by its two ends; each gap to the next one, the longest
    # first (ties: the earliest first). DuckDB sorts out of core: memory stays bounded whatever the rows
    lo, hi = num(warmup_s), num(stop)
    rows = sam.all(f"""
        WITH e AS (SELECT "end" - {num(sam.t0)} AS x FROM s WHERE "end" - {num(sam.t0)} > {lo}
                   AND "end" - {num(sam.t0)} < {hi} UNION ALL SELECT {lo} UNION ALL SELECT {hi}),
             g AS (SELECT x AS a, lead(x) OVER (ORDER BY x) AS b FROM e)
        SELECT a, b, b - a AS gap FROM g WHERE b IS NOT NULL ORDER BY gap DESC, a LIMIT {STALLS_LISTED}""")
    listed = [Gap(from_s=float(a), to_s=float(b), length_s=float(gap)) for a, b, gap in rows
              if gap >= STALL_LISTED_S]
    a, b, gap = rows[0]
    return Stall(longest_s=float(gap), from_s=float(a), to_s=float(b), window_s=(warmup_s, stop), gaps=listed)


STALL_LISTED_S = 1.0
SERIES_CHUNK_ROWS = 4_000_000  # the per-second percentiles' values held at once (8 bytes each)
STALLS_LISTED = 10


def _batches(sam: Samples, steady: str, requests: int, start: float, end: float, n: int) -> Batches:
    edges = batch_edges(start, end, n)
    # each steady request in the batch its completion falls in (the last batch takes what completes at its end);
    # one batch at a time: its percentiles sort only its own requests
    groups = {str(i): f'"end" >= {num(lo)}' + (f' AND "end" < {num(hi)}' if i < n - 1 else "")
              for i, (lo, hi) in enumerate(edges)}
    which = ("CASE " + " ".join(f'WHEN "end" < {num(hi)} THEN {i}' for i, (_, hi) in enumerate(edges[:-1]))
             + f" ELSE {n - 1} END") if n > 1 else "0"
    found = _grouped(sam, steady, requests, which, groups, {str(i): hi - lo for i, (lo, hi) in enumerate(edges)})
    rows = [Batch(batch=i + 1, **dict(found[str(i)])) for i in range(n)]
    p95 = np.array([r.latency_ms.p95 or np.nan for r in rows], dtype=float)
    rps = np.array([r.throughput_rps for r in rows], dtype=float)
    return Batches(rows=rows, drift=Drift(p95=_trend(p95), throughput=_trend(rps)))


def _trend(values: np.ndarray) -> Trend:
    """Least-squares slope per batch relative to the mean; flagged when steeper than DRIFT_RELATIVE_SLOPE."""
    ok = ~np.isnan(values)
    if ok.sum() < 3 or values[ok].mean() == 0:
        return Trend(relative_slope=None, flagged=False)
    slope = float(np.polyfit(np.arange(len(values))[ok], values[ok], 1)[0] / values[ok].mean())
    return Trend(relative_slope=slope, flagged=abs(slope) > DRIFT_RELATIVE_SLOPE)


CDF_PERCENTS = np.linspace(0, 100, CDF_POINTS)


def _distribution(sam: Samples, steady: str, cdf_values: list[float] | None) -> Distribution:
    """What the charts need, precomputed so that the report never computes statistics: the CDF (its values at
    CDF_PERCENTS, computed beforehand) and a histogram over HIST_BINS log-spaced bins (numpy.histogram's bins,
    counted by the engine)."""
    if not cdf_values:
        return Distribution(cdf=[], hist=Histogram(edges=[], counts=[]))
    low, high = sam.one(f"SELECT min(latency_ms), max(latency_ms) FROM s WHERE {steady}")
    cdf = [(float(v), float(p / 100)) for v, p in zip(cdf_values, CDF_PERCENTS, strict=True)]
    lo, hi = max(float(low), 0.01), max(float(high), 0.02)
    edges = np.geomspace(lo, hi * 1.0001, HIST_BINS + 1)
    # the bin from the logarithm, then moved by one where rounding put a value beside its edge: the bin
    # numpy.searchsorted would give (edges are 1-based in SQL: bin b spans edges[b + 1] to edges[b + 2])
    guess = (f"least(greatest(CAST(floor(ln(latency_ms / {num(lo)}) / {num(float(np.log(edges[-1] / lo)))} * "
             f"{HIST_BINS}) AS BIGINT), 0), {HIST_BINS - 1})")
    listed = "[" + ", ".join(num(e) for e in edges) + "]"
    rows = sam.all(f"""
        WITH v AS (SELECT latency_ms AS x, {guess} AS b FROM s
                   WHERE {steady} AND latency_ms >= {num(edges[0])} AND latency_ms <= {num(edges[-1])})
        SELECT CASE WHEN x < {listed}[b + 1] THEN b - 1
                    WHEN b < {HIST_BINS - 1} AND x >= {listed}[b + 2] THEN b + 1 ELSE b END AS bin, count(*)
        FROM v GROUP BY bin""")
    counts = [0] * HIST_BINS
    for b, c in rows:
        counts[int(b)] += int(c)
    return Distribution(cdf=cdf, hist=Histogram(edges=edges.tolist(), counts=counts))


def _noise(stats: Counts, series: list[TimePoint]) -> list[str]:
    notes = []
    n = stats.requests
    for key, minimum in MIN_SAMPLES.items():
        if 0 < n < minimum:
            notes.append(f"{key} from {n} samples (needs >= {minimum} to be meaningful)")
    rps = np.array([s.rps for s in series[1:-1]], dtype=float)  # edge seconds are partial
    if rps.size >= 3 and rps.mean() > 0 and rps.std() / rps.mean() > 0.25:
        notes.append(f"throughput unstable: per-second req/s varies by {100 * rps.std() / rps.mean():.0f} % (CV)")
    lat = stats.latency_ms
    if lat.p50 and lat.p99 and lat.p99 / lat.p50 > 10:
        notes.append(f"wide spread: P99 is {lat.p99 / lat.p50:.0f}x P50")
    return notes


def analyse_scenario(data: Samples | pd.DataFrame, warmup_s: float, batches: int | None,
                     load_end_s: float | None = None) -> ScenarioSummary:
    """One scenario's figures as the summary holds them. `load_end_s`: the planned end of the load after the
    first request, for the stall figures (None: up to the last completion). Path B, the samples file's check and
    the generator's figures come from the run folder (analyse_run)."""
    with scanning(data) as sam:
        return _analyse(sam, warmup_s, batches, load_end_s)


def _analyse(sam: Samples, warmup_s: float, batches: int | None, load_end_s: float | None) -> ScenarioSummary:
    if not sam.rows:
        return ScenarioSummary(**dict(_counts(sam, "TRUE", 0, None)), samples_total=0, warmup_excluded=0,
                               window_s=0.0, endpoints={}, warmup_s=warmup_s, timeseries=[],
                               distribution=_distribution(sam, "TRUE", None), noise=["no samples"], batches=None)
    st = steady(sam, warmup_s)
    window = max(sam.last_end - (sam.t0 + warmup_s), 1e-9)
    # the headline percentiles and the CDF from one sort of the steady latencies: numpy's figures to the last bit
    picked = sam.percentiles("latency_ms", st, [*PERCENTILES.values(), *CDF_PERCENTS])
    head, cdf = (picked[:len(PERCENTILES)], picked[len(PERCENTILES):]) if picked else (None, None)
    stats = _counts(sam, st, window, head)
    series = _timeseries(sam)
    failed = sam.all(f"SELECT error, status, count(*) FROM s WHERE {st} AND ok = 0 GROUP BY error, status")
    errors = errors_by_count((str(e), int(c), int(n)) for e, c, n in failed)
    names = sorted(str(k) for k, in sam.all(f"SELECT DISTINCT name FROM s WHERE {st}"))
    endpoints = _grouped(sam, st, stats.requests, "name", {k: f"name = {quoted(k)}" for k in names},
                         dict.fromkeys(names, window))
    return ScenarioSummary(
        **dict(stats), samples_total=sam.rows, warmup_excluded=sam.rows - stats.requests, window_s=window,
        endpoints=endpoints,
        errors_by_message=errors.counts, error_examples=errors.examples,
        timeseries=series, warmup_s=warmup_s,
        distribution=_distribution(sam, st, cdf),
        noise=_noise(stats, series),
        batches=_batches(sam, st, stats.requests, sam.t0 + warmup_s, sam.last_end, batches) if batches else None,
        open_model=open_model(sam, st, window) if is_open(sam, st) else None,
        stall=stalls(sam, warmup_s, load_end_s))


def analyse_run(run_dir: Path) -> Summary:
    """The run folder's summary: every scenario of the manifest, from its samples and Path B files."""
    man = manifest.read(run_dir)
    folder = RunFolder(run_dir)
    scenarios = {}
    for name, entry in man.scenarios.items():
        warmup_s = float(entry.definition.get("warmup_s", 0))
        sam, samples_file = load_checked(run_dir, name, entry)
        with sam:
            scenarios[name] = _scenario(folder, name, entry, sam, samples_file, warmup_s)
    return Summary(run_id=man.run_id,
                   method="numpy.percentile (linear) over all requests after the warm-up; throughput = requests / "
                          "steady window", scenarios=scenarios)


def _scenario(folder: RunFolder, name: str, entry: ScenarioEntry, sam: Samples, samples_file: SamplesFile | None,
              warmup_s: float) -> ScenarioSummary:
    # a scenario that ran its plan is watched for stalls up to its planned end; one that ended early, up to
    # its last completion (what came after is the fault that ended it, named on its own)
    load_end = entry.planned_s if entry.status == "completed" else None
    sc = analyse_scenario(sam, warmup_s, entry.definition.get("batches"), load_end)
    sc.samples_file = samples_file
    st = steady(sam, warmup_s)
    if sc.open_model is not None:
        start = sam.t0 + warmup_s
        dropped = sum(1 for t in read_dropped(folder.dropped(name)) if t >= start)
        sc.open_model = open_model(sam, st, sc.window_s, dropped)
    path = folder.notifications(name)
    if path.exists():  # Path B measured (self-hosted runs with notifications enabled)
        sc.notifications = notify.summarize(path, [folder.received(p) for p in notify.CHANNELS],
                                            folder.acknowledged(name), sam, f"{st} AND name = 'bookClinicAppointment'")
    # the generator's figures as built (a mapping, as its tests read them), checked by the model here
    return ScenarioSummary.model_validate({**dict(sc), **generator_figures(entry.generator_cpu, sam, warmup_s)})
