"""Drift over a long run (issue 28 item 3): the slope per hour, with a 95 % interval, of the latency's P95 and of
what the soak probe read (service memory, dead tuples, table size, outbox backlog), and the latency's verdict.

Latency: the steady window (after the warm-up, without the last, partial second) is cut into equal windows of
WINDOW_S (60 s), or of a twelfth of the window for a run shorter than twelve minutes (at least 1 s); fewer than
MIN_WINDOWS windows is "not measured: too short". A window's P95 is the request-weighted mean of its seconds' P95s
from the summary's per-second series (Summary.scenarios[x].timeseries): not the exact P95 of the window's samples,
but read from summary.json alone, whatever engine wrote it, and the slope of that mean is the slope of the P95's
level, which is what a drift is. Ordinary least squares over the windows, with a Student t interval.

Neighbouring windows are not independent (an autovacuum cycle or a growing queue spans several), and treating them
as independent makes the interval too narrow: on 300 seeded AR(1) series (phi 0.7, 29 windows) the classical interval
held the true slope in 60 % of them. The interval is therefore widened by the residuals' lag-1 autocorrelation r
(clamped to 0..0.9) through an effective number of points n (1 - r) / (1 + r), as Santer et al. (2000) do for trends
of autocorrelated series: the residual variance and the t's degrees of freedom use it. The same series: 90 %; on
independent windows 97 % (a little wide). Newey-West standard errors with a lag of floor(4 (n/100)^(2/9)) were
measured too (400 series: 69 % where the classical held 58 %): with 6 to 60 windows that lag is 2 or 3 and misses
most of the correlation. tests/analysis/test_drift.py holds these coverages.

The verdict compares the slope relative to the mean P95 (per hour) with a threshold (DEFAULT_DRIFT_PER_HOUR
unless scenarios.yaml sets thresholds.p95_drift_per_hour): "drift" when the whole interval lies above it, "no
detectable drift" when the interval includes 0, "within threshold" when the whole interval lies below the threshold
(a small rise measured precisely, or a fall), "inconclusive" otherwise (a rise shown, but an interval that reaches
past the threshold).

A slope per hour is fitted only from JUDGED_FROM_S of steady state (and a resource's from that long a span of probes):
a slope from a 40-second burst extrapolates its warm-up, not a soak's trend.

Measured once, judged wherever shown: `measure` (the analysis stage) writes the windows, slopes and intervals into
summary.json (ScenarioSummary.drift, no threshold in it); `judged` applies a threshold to those stored figures, and
`assess` does so for the judge and the run page alike, so neither fits anything and the two cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bookbench.analysis.stats import t_quantile
from bookbench.artifacts import soak
from bookbench.artifacts.soak import Probe
from bookbench.artifacts.summary import (
    HOUR_S,
    DriftFigures,
    LatencyFit,
    LatencyWindow,
    ResourceTrend,
    ScenarioSummary,
    Slope,
    Summary,
    TimePoint,
)
from bookbench.config.scenarios import Thresholds

DEFAULT_DRIFT_PER_HOUR = 0.10
WINDOW_S = 60
MIN_WINDOWS = 6
SHORT_RUN_WINDOWS = 12  # a run shorter than this many WINDOW_S is cut into this many windows
MIN_PROBES = 3  # a slope with an interval needs one degree of freedom
# a slope per hour is fitted only from this much steady state (a resource's: this long a span of probes): a slope from
# a 40-second burst extrapolates its warm-up, not a soak's trend. Shorter scenarios get no slope, on the page or in
# the judge: the page draws their windows and says so.
JUDGED_FROM_S = 300.0
DRIFT, NO_DRIFT, WITHIN, INCONCLUSIVE = "drift", "no detectable drift", "within threshold", "inconclusive"
MAX_AUTOCORRELATION = 0.9  # beyond it the effective number of points (about 5 % of n) says nothing more
# a summary.json written before the drift was stored, judged or drawn without the analysis stage filling it in
NOT_STORED = "not measured: summary.json holds no drift figures (bookbench report measures them)"


def ols(t_s: Sequence[float], y: Sequence[float]) -> Slope | str:
    """Least-squares slope of y over t (seconds) with its 95 % t interval, or why there is none."""
    n = len(t_s)
    if n != len(y):
        raise ValueError("t and y differ in length")
    if n < MIN_PROBES:
        return f"not measured: {n} point(s), a slope with an interval needs {MIN_PROBES}"
    t0 = t_s[0]
    ts = [t - t0 for t in t_s]
    mt, my = sum(ts) / n, sum(y) / n
    sxx = sum((t - mt) ** 2 for t in ts)
    if sxx <= 0:
        return "not measured: every point at the same time"
    b = sum((t - mt) * (v - my) for t, v in zip(ts, y, strict=True)) / sxx
    a = my - b * mt
    resid = [v - a - b * t for t, v in zip(ts, y, strict=True)]
    sse = sum(e * e for e in resid)
    df = max(effective_n(resid) - 2, 1.0)  # n - 2 for independent points
    se = math.sqrt(sse / df / sxx)
    half = t_quantile(0.975, df) * se
    return Slope(per_hour=b * HOUR_S, low=(b - half) * HOUR_S, high=(b + half) * HOUR_S, intercept=a, mean=my, n=n)


def effective_n(resid: Sequence[float]) -> float:
    """n (1 - r) / (1 + r), r the residuals' lag-1 autocorrelation clamped to 0..MAX_AUTOCORRELATION: how many
    independent points the correlated residuals are worth (n itself for residuals that are all 0)."""
    n = len(resid)
    sse = sum(e * e for e in resid)
    if sse <= 0:
        return float(n)
    r = sum(resid[i] * resid[i - 1] for i in range(1, n)) / sse
    r = min(max(r, 0.0), MAX_AUTOCORRELATION)
    return n * (1 - r) / (1 + r)


@dataclass(frozen=True)
class LatencyDrift:
    """The stored latency figures with a threshold applied: the verdict the judge and the page both show."""
    verdict: str  # DRIFT | NO_DRIFT | WITHIN | INCONCLUSIVE | "too short ..." | "not measured: ..."
    threshold: float  # share of the mean P95 per hour
    fit: LatencyFit

    @property
    def window_s(self) -> int:
        return self.fit.window_s

    @property
    def windows(self) -> list[LatencyWindow]:
        return self.fit.windows

    @property
    def slope(self) -> Slope | None:
        return self.fit.slope

    def words(self) -> str:
        """The slope and its interval in one sentence, or why it was not measured."""
        if self.slope is None:
            return self.verdict
        s, rel = self.slope, self.slope.relative()
        pct = (f" ({100 * rel[0]:+.1f} % of the mean P95 per hour, 95 % interval {100 * rel[1]:+.1f} % to "
               f"{100 * rel[2]:+.1f} %)") if rel else ""
        limit = f"{100 * self.threshold:g} %/h"
        judged = {WITHIN: f"below the {limit} threshold", DRIFT: f"above the {limit} threshold"}.get(
            self.verdict, f"threshold {limit}")
        return (f"P95 {s.per_hour:+.2f} ms per hour, 95 % interval {s.low:+.2f} to {s.high:+.2f} ms{pct}, over "
                f"{s.n} windows of {self.window_s} s (mean P95 {s.mean:.1f} ms): {self.verdict} ({judged})")


def windows(series: Sequence[TimePoint], warmup_s: float) -> tuple[int, list[LatencyWindow], float]:
    """(window length s, the windows, steady seconds). Seconds with no completed request add no P95; a window with
    none at all is left out, and so is a last window shorter than the others."""
    steady = [p for p in series[:-1] if p.t >= warmup_s]  # the last second is partial
    if not steady:
        return 0, [], 0.0
    span = steady[-1].t - steady[0].t + 1
    size = WINDOW_S if span >= SHORT_RUN_WINDOWS * WINDOW_S else max(1, span // SHORT_RUN_WINDOWS)
    start = steady[0].t
    groups: dict[int, list[TimePoint]] = {}
    for p in steady:
        groups.setdefault((p.t - start) // size, []).append(p)
    out = []
    for k, points in sorted(groups.items()):
        if start + (k + 1) * size > start + span:
            continue  # a last window cut short
        weighted = [(p.p95, p.rps) for p in points if p.p95 is not None and p.rps > 0]
        n = sum(w for _, w in weighted)
        if n:
            out.append(LatencyWindow(mid_s=start + (k + 0.5) * size, p95_ms=sum(v * w for v, w in weighted) / n,
                                     requests=n))
    return int(size), out, float(span)


def verdict(slope: Slope, threshold: float) -> str:
    rel = slope.relative()
    if rel is None:
        return "not measured: no positive mean P95"
    _, low, high = rel
    if low > threshold:
        return DRIFT
    if low <= 0 <= high:
        return NO_DRIFT
    if high < threshold:
        return WITHIN  # a precisely measured small rise, or a fall
    return INCONCLUSIVE  # a rise shown, but not shown to stay below the threshold nor to exceed it


def too_short(span_s: float, of: str) -> str:
    return f"too short to extrapolate per hour ({span_s:.0f} s of {of}; {JUDGED_FROM_S / 60:g} minutes needed)"


def measure_latency(series: Sequence[TimePoint], warmup_s: float) -> LatencyFit:
    """The windows, and the slope only from JUDGED_FROM_S of steady state (the windows alone below it: the page still
    draws them). No threshold: `judged` applies one."""
    size, wins, steady_s = windows(series, warmup_s)
    if not wins and not steady_s:
        return LatencyFit(why="not measured: no per-second latency after the warm-up (no sample was read)")
    fit = LatencyFit(window_s=size, windows=wins, steady_s=steady_s, long_enough=steady_s >= JUDGED_FROM_S)
    if not fit.long_enough:
        return fit.model_copy(update={"why": too_short(steady_s, "steady state")})
    if len(wins) < MIN_WINDOWS:
        return fit.model_copy(update={"why": f"not measured: too short ({len(wins)} window(s) of P95 after the "
                                             f"warm-up, {MIN_WINDOWS} needed)"})
    found = ols([w.mid_s for w in wins], [w.p95_ms for w in wins])
    if isinstance(found, str):
        return fit.model_copy(update={"why": found})
    # the intercept is at the first window's middle: the page draws the line on the timeseries' own clock
    slope = found.model_copy(update={"intercept": found.intercept - found.per_hour * wins[0].mid_s / HOUR_S})
    return fit.model_copy(update={"slope": slope})


def judged(fit: LatencyFit, threshold: float) -> LatencyDrift:
    """Stored latency figures against a threshold (a share of the mean P95 per hour): nothing is fitted here."""
    if fit.slope is None:
        return LatencyDrift(fit.why or "not measured", threshold, fit)
    return LatencyDrift(verdict(fit.slope, threshold), threshold, fit)


def latency_drift(series: Sequence[TimePoint], warmup_s: float,
                  threshold: float = DEFAULT_DRIFT_PER_HOUR) -> LatencyDrift:
    """Measured and judged in one go (the tests' and a benchmark's shortcut; the run measures once, judges later)."""
    return judged(measure_latency(series, warmup_s), threshold)


# -- what the soak probe read ---------------------------------------------------------------------------------------
RESOURCES = {  # name -> (unit, how a probe gives it, in that unit)
    "service RSS": "MB",
    "dead tuples": "rows",
    "table + index size": "MB",
    "outbox backlog": "rows",
}


def resource_value(p: Probe, name: str) -> float | None:
    """One probe's reading of a resource (the booking tables summed), or None when that part was not measured."""
    if name == "service RSS":
        return None if p.rss_bytes is None else p.rss_bytes / 2**20
    if name == "outbox backlog":
        return None if p.outbox_pending is None else float(p.outbox_pending)
    if p.tables is None:
        return None
    if name == "dead tuples":
        dead = [t.n_dead_tup for t in p.tables.values() if t.n_dead_tup is not None]
        return float(sum(dead)) if dead else None
    return sum(t.total_bytes for t in p.tables.values()) / 2**20


def resource_trends(probes: Sequence[Probe]) -> list[ResourceTrend]:
    """The slope per hour of each RESOURCES entry over the probes that measured it."""
    out = []
    for name, unit in RESOURCES.items():
        points = [(p.t, v) for p in probes if (v := resource_value(p, name)) is not None]
        if not points:
            why = next((p.not_measured.get(key) for p in probes for key in _PARTS[name]
                        if p.not_measured.get(key)), None)
            out.append(ResourceTrend(name=name, unit=unit, slope=None, why=why or "not measured", first=None,
                                     last=None))
            continue
        first, last = points[0][1], points[-1][1]
        span = points[-1][0] - points[0][0]
        if span < JUDGED_FROM_S:
            out.append(ResourceTrend(name=name, unit=unit, slope=None, why=too_short(span, "probes"), first=first,
                                     last=last))
            continue
        fit = ols([t for t, _ in points], [v for _, v in points])
        out.append(ResourceTrend(name=name, unit=unit, slope=None if isinstance(fit, str) else fit,
                                 why=fit if isinstance(fit, str) else None, first=first, last=last))
    return out


_PARTS = {"service RSS": ("rss",), "dead tuples": ("tables", "database"),
          "table + index size": ("tables", "database"), "outbox backlog": ("outbox", "database")}


# -- measured once (the analysis stage), judged wherever shown ------------------------------------------------------
def measure(sc: ScenarioSummary, probes: Sequence[Probe] = ()) -> DriftFigures:
    """The scenario's latency figures and, given soak probes, each resource's trend: what summary.json stores."""
    return DriftFigures(judged_from_s=JUDGED_FROM_S, latency=measure_latency(sc.timeseries, sc.warmup_s),
                        trends=resource_trends(probes) if probes else [])


def measure_run(run_dir: Path, summary: Summary) -> Summary:
    """Every scenario's drift figures, measured where the summary lacks them (a fresh analysis, or a summary.json
    written before they were stored) from its per-second series and db/<scenario>_soak.jsonl; kept where present."""
    for name, sc in summary.scenarios.items():
        if sc.drift is None:
            sc.drift = measure(sc, soak.read(soak.soak_file(run_dir, name)))
    return summary


def limit(thresholds: Thresholds) -> float:
    """The drift threshold scenarios.yaml sets, else DEFAULT_DRIFT_PER_HOUR (what the page measures against)."""
    return thresholds.p95_drift_per_hour or DEFAULT_DRIFT_PER_HOUR


@dataclass(frozen=True)
class SoakDrift:
    """Everything the judge and the run page show of a scenario's drift: the stored figures, judged."""
    latency: LatencyDrift
    trends: list[ResourceTrend]  # empty when no probe was read


def assess(sc: ScenarioSummary, thresholds: Thresholds) -> SoakDrift:
    """The scenario's stored drift figures against thresholds.p95_drift_per_hour (DEFAULT_DRIFT_PER_HOUR when unset):
    the one code path behind the judge's drift verdict and the page's Soak section. Fits nothing; a summary without
    the figures (never measured) says so."""
    figures = sc.drift or DriftFigures(judged_from_s=JUDGED_FROM_S, latency=LatencyFit(why=NOT_STORED))
    return SoakDrift(judged(figures.latency, limit(thresholds)), figures.trends)
