"""Exact statistics from a run folder's raw samples -> summary.json. Never imports locust.

Method (so anyone can reproduce a figure with one line of numpy): per scenario, drop the requests that started in
the first `warmup_s` seconds after the scenario's first request; percentiles are numpy.percentile with its
default linear interpolation over every remaining request (failed ones included, as a caller waits for those too);
throughput is completed requests divided by the steady window, from the end of the warm-up to the last completion.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bookbench.analysis import notifications as notify
from bookbench.analysis.error_groups import errors_by_message
from bookbench.artifacts import manifest
from bookbench.artifacts import notifications as facts_file
from bookbench.artifacts.folder import RunFolder
from bookbench.artifacts.manifest import ScenarioEntry
from bookbench.artifacts.run_files import read_acknowledged_times, read_dropped
from bookbench.artifacts.samples import COLUMNS, check, read_text
from bookbench.artifacts.summary import (
    Batch,
    Batches,
    Counts,
    Distribution,
    Drift,
    Gap,
    Histogram,
    Latency,
    OpenModel,
    SamplesFile,
    ScenarioSummary,
    Stall,
    Summary,
    TimePoint,
    Trend,
)
from bookbench.config.shape import batch_edges

PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
# pyperf-style noise rules: a percentile needs enough samples beyond it to mean anything
MIN_SAMPLES = {"p95": 20, "p99": 100, "p999": 1000}
CDF_POINTS = 200
HIST_BINS = 60
DRIFT_RELATIVE_SLOPE = 0.05  # a batch-to-batch trend above 5 % of the mean per batch is a drift


def load_samples(path: Path) -> pd.DataFrame:
    """The readable rows of a samples file (tests, tools); a run's analysis goes through load_checked()."""
    return _frame(read_text(path) if path.exists() else "", str(path))[0]


# numeric columns every row must hold: a finite number, never negative (a latency of -5 ms is no measurement)
NUMERIC = ("ts", "latency_ms", "status", "ok", "bytes", "users")


def _frame(text: str, rel: str) -> tuple[pd.DataFrame, str | None]:
    """The rows as a frame, and what is wrong with the file (the first bad row, by file and line) or None.
    Bad rows are left out, so the page still shows the rest; the file is then judged damaged."""
    empty = pd.DataFrame({c: pd.Series(dtype="float64") for c in COLUMNS})
    if not text.strip():
        return empty, None
    try:
        df = pd.read_csv(io.StringIO(text), dtype={"name": str, "method": str, "error": str, "worker": str},
                         keep_default_na=False, skip_blank_lines=False)
    except (pd.errors.ParserError, ValueError) as exc:
        return empty, f"{rel}: not a samples CSV ({' '.join(str(exc).split())})"
    missing = [c for c in NUMERIC if c not in df]
    if missing:
        return empty, f"{rel}: no column {', '.join(missing)} in its header"
    bad = np.zeros(len(df), dtype=bool)
    first: tuple[int, str, str] | None = None  # (row, column, why)
    for col in NUMERIC:
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            wrong = ~np.isfinite(values) | (values < 0)
        if wrong.any():
            row = int(np.argmax(wrong))
            if first is None or row < first[0]:
                why = ("is negative" if values[row] < 0 else "is not a finite number" if not np.isnan(values[row])
                       or str(df[col].iloc[row]).strip().lower() == "nan" else "is not a number")
                first = (row, col, why)
            bad |= wrong
        df[col] = values
    problem = None
    if first is not None:
        row, col, why = first
        # line 1 is the header; the raw text is quoted as the file has it, not as pandas parsed it
        raw = next(csv.reader([text.split("\n")[row + 1]]), [])
        cell = raw[list(df.columns).index(col)] if len(raw) > list(df.columns).index(col) else ""
        more = int(bad.sum()) - 1
        problem = f"{rel} line {row + 2}: {col} \"{cell}\" {why}" + (f" ({more:,} more bad row(s))" if more else "")
        df = df[~bad].reset_index(drop=True)
    for col in ("status", "ok", "bytes", "users"):
        df[col] = df[col].astype("int64")
    df["end"] = df["ts"] + df["latency_ms"] / 1000.0
    # open model: when the request was meant to start (NaN in the closed model and in format-1 files)
    df["intended"] = pd.to_numeric(df["intended"], errors="coerce") if "intended" in df else np.nan
    return df, problem


def load_checked(run_dir: Path, name: str, entry: ScenarioEntry) -> tuple[pd.DataFrame, SamplesFile | None]:
    """A scenario's samples and the summary's `samples_file`: checked against the row count and sha256 the
    manifest recorded when the file was closed. A missing, truncated, non-gzip, altered or ill-formed file is
    "damaged" (the judge's verdict: NO-GO); a run folder that recorded neither reads as "not verified"."""
    rel = entry.samples_file or f"samples/{name}.csv.gz"
    path = run_dir / rel
    if entry.samples_file is None and not path.exists():
        return _frame("", rel)[0], None  # never written: a scenario that did not run
    rows = entry.counts.samples if entry.counts is not None and entry.samples_sha256 is not None else None
    found = check(path, rel, rows, entry.samples_sha256)
    df, bad_row = _frame(found.text, rel)
    status, detail = ("damaged", bad_row) if bad_row and found.status != "damaged" else (found.status, found.detail)
    return df, SamplesFile.model_validate({"path": rel, "status": status, "detail": detail, "rows": found.rows})


def latency_stats(lat: np.ndarray) -> Latency:
    if lat.size == 0:
        return Latency(mean=None, p50=None, p95=None, p99=None, p999=None, max=None)
    p50, p95, p99, p999 = (float(q) for q in np.percentile(lat, list(PERCENTILES.values())))
    return Latency(mean=float(lat.mean()), p50=p50, p95=p95, p99=p99, p999=p999, max=float(lat.max()))


def _counts(df: pd.DataFrame, window_s: float) -> Counts:
    n = len(df)
    failures = int((df["ok"] == 0).sum()) if n else 0
    # availability: answered at all, and not with a server error (a 409 or 404 is the service working)
    down = int(((df["status"] == 0) | (df["status"] >= 500)).sum()) if n else 0
    return Counts(requests=n, failures=failures, error_rate=failures / n if n else 0.0,
                  availability=1 - down / n if n else None,
                  throughput_rps=n / window_s if window_s > 0 else 0.0,
                  latency_ms=latency_stats(df["latency_ms"].to_numpy(dtype=float)))


def _timeseries(df: pd.DataFrame, t0: float) -> list[TimePoint]:
    """1-second windows by completion time: req/s, errors/s, P50/P95/P99, active users."""
    if df.empty:
        return []
    sec = np.floor(df["end"].to_numpy() - t0).astype(int)
    by_second: dict[int, TimePoint] = {}
    for _, group in df.groupby(sec):
        lat = group["latency_ms"].to_numpy(dtype=float)
        p50, p95, p99 = (float(q) for q in np.percentile(lat, [50, 95, 99]))
        second = int(np.floor(float(group["end"].iloc[0]) - t0))
        # each Locust worker reports its own users: the total is the sum of the workers' counts
        users = int(group.groupby("worker")["users"].max().sum())
        by_second[second] = TimePoint(t=second, rps=len(group), errors=int((group["ok"] == 0).sum()),
                                      p50=p50, p95=p95, p99=p99, users=users)
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


def stalls(df: pd.DataFrame, t0: float, warmup_s: float, load_end_s: float | None) -> Stall | None:
    """The longest time without a completed request inside the load window: from the end of the warm-up to the
    planned end (`load_end_s` after the first request; None: a scenario that ended early, up to its last
    completion). Also every gap of at least STALL_LISTED_S, the longest first (at most STALLS_LISTED)."""
    if df.empty:
        return None
    ends = np.sort(df["end"].to_numpy(dtype=float)) - t0
    stop = load_end_s if load_end_s is not None else float(ends[-1])
    if stop <= warmup_s:
        return None
    inside = ends[(ends > warmup_s) & (ends < stop)]
    edges = np.concatenate([[warmup_s], inside, [stop]])
    gaps = np.diff(edges)
    order = np.argsort(-gaps, kind="stable")
    listed = [Gap(from_s=float(edges[i]), to_s=float(edges[i + 1]), length_s=float(gaps[i]))
              for i in order[:STALLS_LISTED] if gaps[i] >= STALL_LISTED_S]
    i = int(order[0])
    return Stall(longest_s=float(gaps[i]), from_s=float(edges[i]), to_s=float(edges[i + 1]),
                 window_s=(warmup_s, stop), gaps=listed)


STALL_LISTED_S = 1.0
STALLS_LISTED = 10


def _batches(df: pd.DataFrame, start: float, end: float, n: int) -> Batches:
    rows = []
    for i, (lo, hi) in enumerate(batch_edges(start, end, n)):
        part = df[(df["end"] >= lo) & (df["end"] < hi) if i < n - 1 else (df["end"] >= lo)]
        rows.append(Batch(batch=i + 1, **dict(_counts(part, hi - lo))))
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


def _distribution(lat: np.ndarray) -> Distribution:
    """What the charts need, precomputed so that the report never computes statistics."""
    if lat.size == 0:
        return Distribution(cdf=[], hist=Histogram(edges=[], counts=[]))
    probs = np.linspace(0, 100, CDF_POINTS)
    cdf = [(float(v), float(p / 100)) for v, p in zip(np.percentile(lat, probs), probs, strict=True)]
    lo, hi = max(float(lat.min()), 0.01), max(float(lat.max()), 0.02)
    edges = np.geomspace(lo, hi * 1.0001, HIST_BINS + 1)
    counts, _ = np.histogram(lat, bins=edges)
    return Distribution(cdf=cdf, hist=Histogram(edges=edges.tolist(), counts=counts.tolist()))


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


def analyse_scenario(df: pd.DataFrame, warmup_s: float, batches: int | None,
                     load_end_s: float | None = None) -> ScenarioSummary:
    """One scenario's figures as the summary holds them. `load_end_s`: the planned end of the load after the
    first request, for the stall figures (None: up to the last completion). Path B, the samples file's check and
    the generator's figures come from the run folder (analyse_run)."""
    if df.empty:
        return ScenarioSummary(**dict(_counts(df, 0)), samples_total=0, warmup_excluded=0, window_s=0.0,
                               endpoints={}, warmup_s=warmup_s, timeseries=[], distribution=_distribution(np.array([])),
                               noise=["no samples"], batches=None)
    t0 = float(df["ts"].min())
    steady = _steady(df, warmup_s)
    end = float(df["end"].max())
    window = max(end - (t0 + warmup_s), 1e-9)
    stats = _counts(steady, window)
    series = _timeseries(df, t0)
    errors = errors_by_message(steady[steady["ok"] == 0])
    return ScenarioSummary(
        **dict(stats), samples_total=len(df), warmup_excluded=len(df) - len(steady), window_s=window,
        endpoints={str(name): _counts(group, window) for name, group in steady.groupby("name")},
        errors_by_message=errors.counts, error_examples=errors.examples,
        timeseries=series, warmup_s=warmup_s,
        distribution=_distribution(steady["latency_ms"].to_numpy(dtype=float)),
        noise=_noise(stats, series),
        batches=_batches(steady, t0 + warmup_s, end, batches) if batches else None,
        open_model=open_model(steady, window) if _is_open(steady) else None,
        stall=stalls(df, t0, warmup_s, load_end_s))


def _is_open(df: pd.DataFrame) -> bool:
    """Whether the requests carry intended send times (an open-model scenario)."""
    return "intended" in df and bool(df["intended"].notna().any())


def open_model(steady: pd.DataFrame, window_s: float, dropped: int = 0) -> OpenModel:
    """Open-model figures: latency from the intended send time (what a caller waiting since then sees) beside the
    service time, how late sends left, and the arrivals dropped for want of free capacity."""
    sent = steady[steady["intended"].notna()]
    from_intended = ((sent["end"] - sent["intended"]) * 1000.0).to_numpy(dtype=float)
    late = ((sent["ts"] - sent["intended"]) * 1000.0).to_numpy(dtype=float)
    service = latency_stats(sent["latency_ms"].to_numpy(dtype=float))
    intended = latency_stats(from_intended)
    offered = len(sent) + dropped
    p99, p99i = service.p99, intended.p99
    return OpenModel(
        latency_from_intended_ms=intended, send_lateness_ms=latency_stats(late),
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


def generator_figures(cpu: dict[str, Any] | None, df: pd.DataFrame, warmup_s: float) -> dict[str, Any]:
    """`generator`: each Locust process's CPU over the steady window (share of one core) and, in the open model,
    send lateness per arrival; `generator_saturated` with its reason when either says the generator, not the
    service, set the pace."""
    if df.empty:
        return {"generator": None, "generator_saturated": False, "generator_saturated_reason": None}
    start = float(df["ts"].min()) + warmup_s
    end = float(df["end"].max())
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
    lateness = _lateness(_steady(df, warmup_s)) if _is_open(df) else None
    if lateness and lateness["arrivals"] >= MIN_SAMPLES["p95"] and lateness["p95"] > LATENESS_P95_BOUND_MS:
        reasons.append(f"open-model sends left late: P95 {lateness['p95']:.0f} ms after their intended time "
                       f"(bound {LATENESS_P95_BOUND_MS:.0f} ms)")
    figures = None if procs is None and lateness is None else {
        "cpu": procs, "lateness_ms": lateness, "busy_share": GENERATOR_BUSY_SHARE,
        "lateness_bound_ms": LATENESS_P95_BOUND_MS}
    return {"generator": figures, "generator_saturated": bool(reasons),
            "generator_saturated_reason": "; ".join(reasons) or None}


def _lateness(steady: pd.DataFrame) -> dict[str, Any] | None:
    """How late each arrival's first request left (a login before the operation must not count the login's
    latency as lateness): P50, P95, max in ms."""
    sent = steady[steady["intended"].notna()]
    if sent.empty:
        return None
    late = ((sent.groupby("intended")["ts"].min() - sent.groupby("intended")["intended"].first()) * 1000.0)
    values = late.to_numpy(dtype=float)
    p50, p95 = np.percentile(values, [50, 95])
    return {"arrivals": int(values.size), "p50": float(p50), "p95": float(p95), "max": float(values.max())}


def _steady(df: pd.DataFrame, warmup_s: float) -> pd.DataFrame:
    """The requests that started after the warm-up (the first `warmup_s` seconds after the first request)."""
    if df.empty:
        return df
    return df[df["ts"] >= float(df["ts"].min()) + warmup_s]


def analyse_run(run_dir: Path) -> Summary:
    """The run folder's summary: every scenario of the manifest, from its samples and Path B files."""
    man = manifest.read(run_dir)
    folder = RunFolder(run_dir)
    scenarios = {}
    for name, entry in man.scenarios.items():
        warmup_s = float(entry.definition.get("warmup_s", 0))
        df, samples_file = load_checked(run_dir, name, entry)
        # a scenario that ran its plan is watched for stalls up to its planned end; one that ended early, up to
        # its last completion (what came after is the fault that ended it, named on its own)
        load_end = entry.planned_s if entry.status == "completed" else None
        sc = analyse_scenario(df, warmup_s, entry.definition.get("batches"), load_end)
        sc.samples_file = samples_file
        steady = _steady(df, warmup_s)
        if sc.open_model is not None:
            start = float(df["ts"].min()) + warmup_s
            dropped = sum(1 for t in read_dropped(folder.dropped(name)) if t >= start)
            sc.open_model = open_model(steady, sc.window_s, dropped)
        path = folder.notifications(name)
        if path.exists():  # Path B measured (self-hosted runs with notifications enabled)
            received = [r for provider in notify.CHANNELS for r in facts_file.read_received(folder.received(provider))]
            facts = facts_file.read(path)
            sc.notifications = notify.summarize(facts, received, read_acknowledged_times(folder.acknowledged(name)))
            booking = steady[steady["name"] == "bookClinicAppointment"]
            sc.notifications.booking_in_outages = notify.booking_latency_in_outages(
                facts, booking["ts"].to_numpy(dtype=float), booking["latency_ms"].to_numpy(dtype=float))
        # the generator's figures as built (a mapping, as its tests read them), checked by the model here
        scenarios[name] = ScenarioSummary.model_validate(
            {**dict(sc), **generator_figures(entry.generator_cpu, df, warmup_s)})
    return Summary(run_id=man.run_id,
                   method="numpy.percentile (linear) over all requests after the warm-up; throughput = requests / "
                          "steady window", scenarios=scenarios)
