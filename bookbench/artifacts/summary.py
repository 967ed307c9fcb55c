"""summary.json: the analysis of a run folder's samples (exact percentiles, throughput, series for the charts).

Validated against the model on write and on read, and handed to the judge, the pages and the terminal as the model:
they read attributes (`sc.latency_ms.p95`), so a field they rely on is checked once, here.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bookbench.artifacts.files import read_model, write_model

SUMMARY_FORMAT_VERSION = 2  # 2: errors_by_message always present, validated model


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Latency(_Strict):
    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    p999: float | None
    max: float | None


class Counts(_Strict):
    requests: int = Field(ge=0)
    failures: int = Field(ge=0)
    error_rate: float
    availability: float | None
    throughput_rps: float
    latency_ms: Latency


class TimePoint(_Strict):
    """One second of the run by completion time; a second in which nothing completed has no percentiles."""
    t: int
    rps: int
    errors: int
    p50: float | None
    p95: float | None
    p99: float | None
    users: int


class Histogram(_Strict):
    edges: list[float]
    counts: list[int]


class Distribution(_Strict):
    cdf: list[tuple[float, float]]  # (latency ms, cumulative share)
    hist: Histogram


class _BatchNumber(_Strict):
    batch: int


class Batch(Counts, _BatchNumber):
    """One batch of the steady window; its number first, as summary.json has always written it."""


class Trend(_Strict):
    relative_slope: float | None
    flagged: bool


class Drift(_Strict):
    p95: Trend
    throughput: Trend


class Batches(_Strict):
    rows: list[Batch]
    drift: Drift


class OpenModel(_Strict):
    """Open-model figures: latency from the intended send time, send lateness, dropped arrivals."""
    latency_from_intended_ms: Latency
    send_lateness_ms: Latency
    dropped: int
    offered: int
    offered_rps: float
    diverged: bool  # the two latencies part: sends left late or waited for capacity (coordinated omission)


class GeneratorCpu(_Strict):
    samples: int
    busy_fraction: float
    mean_share: float | None
    max_share: float | None


class Lateness(_Strict):
    arrivals: int
    p50: float
    p95: float
    max: float


class Generator(_Strict):
    """The load generator's own CPU per Locust process and, in the open model, its send lateness per arrival."""
    cpu: dict[str, GeneratorCpu] | None
    lateness_ms: Lateness | None
    busy_share: float
    lateness_bound_ms: float


class SamplesFile(_Strict):
    """The samples file checked against the manifest's row count and sha256."""
    path: str
    status: Literal["verified", "not verified", "damaged"]
    detail: str | None
    rows: int | None = None


class Gap(_Strict):
    from_s: float
    to_s: float
    length_s: float


class Stall(_Strict):
    """The longest time without a completed request inside the load window (seconds since the first request)."""
    longest_s: float
    from_s: float
    to_s: float
    window_s: tuple[float, float]
    gaps: list[Gap] = Field(default_factory=list)  # every gap of 1 s or more, the longest first


class Delays(_Strict):
    """Seconds from a booking's acknowledgement (or the outbox commit) to the provider's receipt."""
    n: int
    p50: float | None
    p95: float | None
    p99: float | None
    max: float | None


class Channel(_Strict):
    """One notification channel's messages: expected, delivered before the drain deadline, lost, repeated."""
    expected: int
    delivered: int
    lost: int
    duplicates: int
    dead: int
    retried: int
    redelivered: int = 0  # summaries written before dispatcher deaths were measured do not have it
    delay_s: Delays
    cancel_delay_s: Delays


class CalendarChannel(Channel):
    duplicate_inserts_refused: int  # second inserts of an event refused by its client-chosen id (prevented)


class Backlog(_Strict):
    peak: int
    series: list[tuple[float, int]]  # (seconds since the load's start, pending notifications)


class Breaker(_Strict):
    open_s: float
    openings: int
    spans: list[tuple[float, float]]  # (opened, closed) in seconds since the load's start


class BookingInOutages(_Strict):
    """Booking P95 during the injected provider outages against the rest of the steady load."""
    during_p95_ms: float | None
    during_n: int
    outside_p95_ms: float | None
    outside_n: int


class Notifications(_Strict):
    """Path B figures of one scenario (analysis/notifications.py)."""
    acknowledged_bookings: int
    bookings_without_outbox_rows: int  # the outbox guarantee, checked: must be 0
    queued: int
    lost: int
    dead: int
    redelivered: int = 0
    duplicates: int
    conflicts_flagged: int
    sms: Channel
    calendar: CalendarChannel
    backlog: Backlog
    drain_s: float | None  # None: the outbox was still not empty at the drain deadline
    drain_timeout_s: float
    drain_stopped: str | None = None
    exited: dict[str, int] = Field(default_factory=dict)  # dispatcher -> exit code, for one killed mid-load
    breaker: dict[str, Breaker]
    dispatchers: int
    faults: dict[str, Any]  # the injected faults as scenarios.yaml named them (spec.notifications)
    window_s: float
    delivered_per_s: float | None
    booking_in_outages: BookingInOutages | None = None

    @model_validator(mode="before")
    @classmethod
    def _total_duplicates(cls, data: Any) -> Any:
        """Summaries from before the total was written: it is the channels' sum."""
        if isinstance(data, dict) and "duplicates" not in data:
            data = {**data, "duplicates": sum(int(data.get(c, {}).get("duplicates", 0)) for c in ("sms", "calendar"))}
        return data


HOUR_S = 3600.0


class Slope(_Strict):
    """y = intercept + per_hour * t / HOUR_S (t in seconds on the fitted points' clock) with its 95 % interval, the
    mean of y (the scale of a relative slope) and how many points it rests on (analysis/drift.py fits it)."""
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


class LatencyWindow(_Strict):
    mid_s: float  # seconds since the first request (the timeseries' clock)
    p95_ms: float  # the request-weighted mean of its seconds' P95s
    requests: int


class LatencyFit(_Strict):
    """The P95 over the steady window, cut into equal windows, and its slope per hour when there is one. No
    threshold and no verdict: the judge applies scenarios.yaml's to these figures (analysis/drift.judged)."""
    window_s: int = 0
    windows: list[LatencyWindow] = Field(default_factory=list)
    steady_s: float = 0.0
    long_enough: bool = False  # the 5-minute rule: at least drift.JUDGED_FROM_S of steady state
    slope: Slope | None = None
    why: str | None = None  # no slope: "too short to extrapolate per hour (...)" or "not measured: ..."


class ResourceTrend(_Strict):
    """One thing the soak probe read (service RSS, table + index size, dead tuples, outbox backlog): its first and
    last readings and, from drift.JUDGED_FROM_S of probes, its slope per hour."""
    name: str
    unit: str
    slope: Slope | None
    why: str | None  # no slope, and why
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


class DriftFigures(_Strict):
    """What a long run revealed, measured once by the analysis stage (analysis/drift.measure): the latency's drift
    and the soak probe's resource trends (empty without probes). The judge and the Soak section read these."""
    judged_from_s: float  # the 5-minute rule as applied: slopes only from this much steady state / span of probes
    latency: LatencyFit
    trends: list[ResourceTrend] = Field(default_factory=list)


class ScenarioSummary(Counts):
    samples_total: int = Field(ge=0)
    warmup_excluded: int = Field(ge=0)
    warmup_s: float = 0.0
    window_s: float
    endpoints: dict[str, Counts]
    # failures per message with ids, numbers and addresses replaced (`appointment <n> not found`)
    errors_by_message: dict[str, int] = Field(default_factory=dict)
    error_examples: dict[str, str] = Field(default_factory=dict)  # pattern -> its most frequent real message
    timeseries: list[TimePoint]
    distribution: Distribution
    noise: list[str]
    batches: Batches | None
    # Path B (analysis/notifications.py); absent when the run did not measure notifications
    notifications: Notifications | None = None
    # open-model scenarios (arrival_rate stages): latency from the intended send time, lateness, dropped arrivals
    open_model: OpenModel | None = None
    # the load generator's own CPU per Locust process and open-model send lateness (analysis/summarize.py), and
    # whether it was the bottleneck: then the latencies measure the generator, not the service
    generator: Generator | None = None
    generator_saturated: bool = False
    generator_saturated_reason: str | None = None
    # the samples file checked against the manifest's row count and sha256 (verified, not verified, damaged);
    # None for a scenario that wrote none (issue 24)
    samples_file: SamplesFile | None = None
    # the longest time without a completed request inside the load window, and the gaps of 1 s or more
    stall: Stall | None = None
    # the latency's drift per hour and the soak probe's trends (analysis/drift.py); None in a summary written before
    # they were stored: the analysis stage measures them then (pipeline/analyse.py)
    drift: DriftFigures | None = None


class Summary(_Strict):
    format_version: int = SUMMARY_FORMAT_VERSION
    run_id: str
    method: str
    scenarios: dict[str, ScenarioSummary]


def clean(value: Any) -> Any:
    """NaN and infinity are not JSON: they are written as null (no figure)."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def validated(data: dict[str, Any]) -> Summary:
    """The analysis's figures as the model, NaN and infinity as no figure (null)."""
    return Summary.model_validate(clean(data))


def write(run_dir: Path, summary: Summary) -> Path:
    path = run_dir / "summary.json"
    # dumped and validated again: a NaN set on the model after it was built is still written as null
    write_model(path, validated(summary.model_dump()))
    return path


def read(run_dir: Path) -> Summary:
    return read_model(run_dir / "summary.json", Summary, SUMMARY_FORMAT_VERSION)
