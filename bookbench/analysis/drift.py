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
a slope from a 40-second burst extrapolates its warm-up, not a soak's trend. `assess` is the one code path the judge
and the run page both read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from bookbench.artifacts.soak import Probe
from bookbench.artifacts.summary import ScenarioSummary, TimePoint
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
HOUR_S = 3600.0
DRIFT, NO_DRIFT, WITHIN, INCONCLUSIVE = "drift", "no detectable drift", "within threshold", "inconclusive"
MAX_AUTOCORRELATION = 0.9  # beyond it the effective number of points (about 5 % of n) says nothing more


@dataclass(frozen=True)
class Slope:
    """y = intercept + slope * t (t in seconds from the first point), as change per hour with its 95 % interval,
    and the mean of y (the scale for a relative slope)."""
    per_hour: float
    low: float
    high: float
    intercept: float
    mean: float
    n: int

    def relative(self) -> tuple[float, float, float] | None:
        """(slope, low, high) as shares of the mean per hour; None when the mean is not positive."""
        if self.mean <= 0:
            return None
        return self.per_hour / self.mean, self.low / self.mean, self.high / self.mean

    def at(self, t_s: float) -> float:
        return self.intercept + self.per_hour * t_s / HOUR_S


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
    # imported here: scipy.stats costs 0.6 s, and this module sits under every CLI command's imports (the judge)
    from scipy import stats

    half = float(stats.t.ppf(0.975, df)) * se
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
class Window:
    mid_s: float  # seconds since the first request (the timeseries' clock)
    p95_ms: float
    requests: int


@dataclass(frozen=True)
class LatencyDrift:
    verdict: str  # DRIFT | NO_DRIFT | WITHIN | INCONCLUSIVE | "too short ..." | "not measured: ..."
    threshold: float  # share of the mean P95 per hour
    window_s: int = 0
    windows: list[Window] = field(default_factory=list)
    slope: Slope | None = None
    steady_s: float = 0.0

    @property
    def measured(self) -> bool:
        return self.slope is not None

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


def windows(series: Sequence[TimePoint], warmup_s: float) -> tuple[int, list[Window], float]:
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
            out.append(Window(start + (k + 0.5) * size, sum(v * w for v, w in weighted) / n, n))
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


def latency_drift(series: Sequence[TimePoint], warmup_s: float,
                  threshold: float = DEFAULT_DRIFT_PER_HOUR) -> LatencyDrift:
    """The windows, and the slope only from JUDGED_FROM_S of steady state (the windows alone below it: the page still
    draws them)."""
    size, wins, steady_s = windows(series, warmup_s)
    if not wins and not steady_s:
        return LatencyDrift("not measured: no per-second latency after the warm-up (no sample was read)", threshold)
    if steady_s < JUDGED_FROM_S:
        return LatencyDrift(too_short(steady_s, "steady state"), threshold, size, wins, None, steady_s)
    if len(wins) < MIN_WINDOWS:
        return LatencyDrift(f"not measured: too short ({len(wins)} window(s) of P95 after the warm-up, "
                            f"{MIN_WINDOWS} needed)", threshold, size, wins, None, steady_s)
    fit = ols([w.mid_s for w in wins], [w.p95_ms for w in wins])
    if isinstance(fit, str):
        return LatencyDrift(fit, threshold, size, wins, None, steady_s)
    # the intercept is at the first window's middle: the page draws the line on the timeseries' own clock
    fit = Slope(fit.per_hour, fit.low, fit.high, fit.intercept - fit.per_hour * wins[0].mid_s / HOUR_S, fit.mean,
                fit.n)
    return LatencyDrift(verdict(fit, threshold), threshold, size, wins, fit, steady_s)


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


@dataclass(frozen=True)
class ResourceTrend:
    name: str
    unit: str
    slope: Slope | None
    why: str | None  # not measured, and why
    first: float | None
    last: float | None

    def words(self) -> str:
        if self.slope is None:
            seen = "" if self.first is None or self.last is None else \
                f": {self.first:,.1f} -> {self.last:,.1f} {self.unit}"
            return (self.why or "not measured") + seen
        s = self.slope
        return (f"{s.per_hour:+,.2f} {self.unit} per hour (95 % interval {s.low:+,.2f} to {s.high:+,.2f}; "
                f"{self.first:,.1f} -> {self.last:,.1f} {self.unit} over {s.n} probes)")


def resource_trends(probes: Sequence[Probe]) -> list[ResourceTrend]:
    """The slope per hour of each RESOURCES entry over the probes that measured it."""
    out = []
    for name, unit in RESOURCES.items():
        points = [(p.t, v) for p in probes if (v := resource_value(p, name)) is not None]
        if not points:
            why = next((p.not_measured.get(key) for p in probes for key in _PARTS[name]
                        if p.not_measured.get(key)), None)
            out.append(ResourceTrend(name, unit, None, why or "not measured", None, None))
            continue
        span = points[-1][0] - points[0][0]
        if span < JUDGED_FROM_S:
            out.append(ResourceTrend(name, unit, None, too_short(span, "probes"), points[0][1], points[-1][1]))
            continue
        fit = ols([t for t, _ in points], [v for _, v in points])
        out.append(ResourceTrend(name, unit, None if isinstance(fit, str) else fit,
                                 fit if isinstance(fit, str) else None, points[0][1], points[-1][1]))
    return out


_PARTS = {"service RSS": ("rss",), "dead tuples": ("tables", "database"),
          "table + index size": ("tables", "database"), "outbox backlog": ("outbox", "database")}


@dataclass(frozen=True)
class SoakDrift:
    """Everything the judge and the run page show of a scenario's drift, computed once here."""
    latency: LatencyDrift
    trends: list[ResourceTrend]  # empty when no probe was given


def assess(sc: ScenarioSummary, thresholds: Thresholds, probes: Sequence[Probe] = ()) -> SoakDrift:
    """The latency drift against thresholds.p95_drift_per_hour (DEFAULT_DRIFT_PER_HOUR when unset) and, given the
    soak probes, each resource's trend: the one code path behind judge._drift and the page's Soak section."""
    limit = thresholds.p95_drift_per_hour or DEFAULT_DRIFT_PER_HOUR
    return SoakDrift(latency_drift(sc.timeseries, sc.warmup_s, limit), resource_trends(probes) if probes else [])
