"""Live figures for the progress display, kept by the process that records every request.

Locust's own running figures are bucketed (its P95 is rounded to a histogram bin) and its current_rps is a
moving estimate that reads 0.0 for the first seconds. The recorder already holds every request, so the progress
snapshot is computed from those: counts exact, P95 exact over everything so far and over the last few seconds.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path

from bookbench.artifacts import progress

# the window "last N s" figures cover; long enough to hold a few hundred requests at low load
WINDOW_S = 5.0


def exact_percentile(sorted_values: list[float], q: float) -> float:
    """The q-quantile (0..1) of already sorted values, linear interpolation (numpy's default method)."""
    if not sorted_values:
        return math.nan
    pos = q * (len(sorted_values) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass(frozen=True)
class Snapshot:
    """One progress reading, written once a second to the scenario's progress file."""

    t: float  # wall clock when taken
    elapsed_s: float | None  # since the load shape started; None before it has
    users: int
    requests: int
    failures: int
    p95_ms: float | None  # over every request so far
    recent_p95_ms: float | None  # over requests that completed in the window
    recent_rps: float | None  # completions per second in the window
    window_s: float
    # seconds without a completed request, as far as the recorder can know (a master's rows arrive up to its lag
    # late, so it counts only up to `now - lag`): the stall the progress line shows while it happens
    idle_s: float | None = None
    # open model only (None in the closed one): the arrival rate the scenario offers now, and the requests still
    # under way just after each load-generating process's latest completion, summed (from the samples' users
    # column, which holds in-flight in the open model)
    offered_rps: float | None = None
    in_flight: int | None = None

    def write(self, path: Path) -> None:
        progress.write(path, asdict(self))

    @classmethod
    def read(cls, path: Path) -> Snapshot | None:
        fields = progress.read(path)
        try:
            return None if fields is None else cls(**fields)
        except TypeError:  # a file from another version of the fields
            return None


# a worker's rows reach its master as counts per (0.5 s of completion, latency bucket 1 % wide, outcome): the
# progress line's P95 is then within 0.5 % on a master, and the channel carries at most a few hundred entries per
# half second whatever the request rate (the samples themselves stay in each worker's own files)
_END_STEP_S = 0.5
_BUCKET = math.log(1.01)
Digest = list[tuple[float, float, int, int]]  # (start, latency_ms, requests, failures)


def _bucket(latency_ms: float) -> float:
    """The middle of the latency's 1 % wide bucket (0 and below stay as they are)."""
    if latency_ms <= 0:
        return latency_ms
    return round(math.exp((math.floor(math.log(latency_ms) / _BUCKET) + 0.5) * _BUCKET), 6)


def compact(rows: list[tuple[float, float, bool]]) -> Digest:
    """(start, latency_ms, ok) rows as a digest for the master (see _END_STEP_S)."""
    groups: dict[tuple[int, float], list[int]] = {}
    for start, latency, ok in rows:
        key = (int((start + latency / 1000) / _END_STEP_S), _bucket(latency))
        counted = groups.setdefault(key, [0, 0])
        counted[0] += 1
        counted[1] += not ok
    # start = the step's middle less the latency: the end time is what the window and the idle time use
    return [((step + 0.5) * _END_STEP_S - lat / 1000, lat, n, failed) for (step, lat), (n, failed) in groups.items()]


def _counted_percentile(counts: dict[float, int], total: int, q: float) -> float:
    """exact_percentile() of values held as value -> how many times it occurred."""
    if total == 0:
        return math.nan
    pos = q * (total - 1)
    lo_rank, hi_rank = math.floor(pos), min(math.floor(pos) + 1, total - 1)
    lo = hi = math.nan
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if math.isnan(lo) and seen > lo_rank:
            lo = value
        if seen > hi_rank:
            hi = value
            break
    return lo + (hi - lo) * (pos - lo_rank)


class LiveStats:
    """Accumulates (start, latency, ok) of recorded requests; `snapshot()` gives exact figures.

    `lag_s`: how late rows can arrive (0 for a local runner, which flushes before each snapshot; a master gets
    workers' digests every few seconds). The window ends that long before now so it never counts a second that is
    still arriving, which would read as a throughput drop. Latencies over the whole run are kept as 1 % bucket ->
    count (a few thousand keys however long the run): the progress line's P95 "all" is then within 0.5 %; the
    window's figures are exact on a local runner.
    """

    def __init__(self, lag_s: float = 0.0, window_s: float = WINDOW_S) -> None:
        self.lag_s = lag_s
        self.window_s = window_s
        self.latencies: dict[float, int] = {}
        self.requests = 0
        self.recent: deque[tuple[float, float, int]] = deque()  # (end time, latency, requests), oldest first
        self.failures = 0
        self.first_end: float | None = None
        self.last_end: float | None = None
        self.in_flight: dict[str, tuple[float, int]] = {}  # open model: process -> (end, in flight then), latest

    def add(self, start: float, latency_ms: float, ok: bool, in_flight: int | None = None,
            process: str = "local") -> None:
        """One recorded request; `in_flight` (open model, the samples' users column) is how many of `process`'s
        requests were under way when it completed, itself included: the ones left after it are one fewer (so the
        figure falls to 0 once the last request is in)."""
        self.add_many(start, latency_ms, 1, int(not ok))
        end = start + latency_ms / 1000
        if in_flight is not None:
            self.in_flight_at(process, end, in_flight)

    def in_flight_at(self, process: str, end: float, in_flight: int) -> None:
        if end >= self.in_flight.get(process, (-math.inf, 0))[0]:
            self.in_flight[process] = (end, max(0, in_flight - 1))

    def add_many(self, start: float, latency_ms: float, requests: int, failures: int) -> None:
        """`requests` of one latency that completed together (a digest's entry, or one request)."""
        # the running P95 over everything counts 1 %-wide buckets, never exact values: keyed by exact latency, a
        # local runner's dict grew by a key per request, and sorting it every second blocked the load loop for
        # seconds an hour into a soak (inflating the very latencies it records). The window's P95 stays exact.
        bucket = _bucket(latency_ms)
        self.latencies[bucket] = self.latencies.get(bucket, 0) + requests
        self.requests += requests
        end = start + latency_ms / 1000
        self.recent.append((end, latency_ms, requests))
        self.failures += failures
        self.first_end = end if self.first_end is None else min(self.first_end, end)
        self.last_end = end if self.last_end is None else max(self.last_end, end)

    def add_digest(self, digest: Digest) -> None:
        for start, latency, requests, failures in digest:
            self.add_many(float(start), float(latency), int(requests), int(failures))

    def snapshot(self, now: float, users: int, elapsed_s: float | None, offered_rps: float | None = None
                 ) -> Snapshot:
        hi = now - self.lag_s
        lo = hi - self.window_s
        while self.recent and self.recent[0][0] < lo:
            self.recent.popleft()
        window: dict[float, int] = {}
        for end, lat, n in self.recent:
            if end < hi:
                window[lat] = window.get(lat, 0) + n
        in_window = sum(window.values())
        covered = hi - max(lo, self.first_end) if self.first_end is not None else 0.0
        p95 = _counted_percentile(self.latencies, self.requests, 0.95)
        recent = _counted_percentile(window, in_window, 0.95)
        # before any completion, the load's own clock is the time without one
        idle = (hi - self.last_end if self.last_end is not None
                else elapsed_s - self.lag_s if elapsed_s is not None else None)
        return Snapshot(
            t=now, elapsed_s=elapsed_s, users=users, requests=self.requests, failures=self.failures,
            p95_ms=None if math.isnan(p95) else p95, recent_p95_ms=None if math.isnan(recent) else recent,
            # less than a second of data is no rate at all: say nothing rather than 0.0
            recent_rps=in_window / covered if covered >= 1.0 else None, window_s=min(self.window_s, covered),
            idle_s=None if idle is None else max(0.0, idle), offered_rps=offered_rps,
            in_flight=sum(n for _, n in self.in_flight.values()) if self.in_flight else None)
