"""Exact live figures for the progress display, kept by the process that records every request.

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


class LiveStats:
    """Accumulates (start, latency, ok) of recorded requests; `snapshot()` gives exact figures.

    `lag_s`: how late rows can arrive (0 for a local runner, which flushes before each snapshot; a master gets
    workers' rows every few seconds). The window ends that long before now so it never counts a second that is
    still arriving, which would read as a throughput drop.
    """

    def __init__(self, lag_s: float = 0.0, window_s: float = WINDOW_S) -> None:
        self.lag_s = lag_s
        self.window_s = window_s
        self.latencies: list[float] = []
        self.recent: deque[tuple[float, float]] = deque()  # (end time, latency), oldest first
        self.failures = 0
        self.first_end: float | None = None
        self.last_end: float | None = None
        self.in_flight: dict[str, tuple[float, int]] = {}  # open model: process -> (end, in flight then), latest

    def add(self, start: float, latency_ms: float, ok: bool, in_flight: int | None = None,
            process: str = "local") -> None:
        """One recorded request; `in_flight` (open model, the samples' users column) is how many of `process`'s
        requests were under way when it completed, itself included: the ones left after it are one fewer (so the
        figure falls to 0 once the last request is in)."""
        self.latencies.append(latency_ms)
        end = start + latency_ms / 1000
        if in_flight is not None and end >= self.in_flight.get(process, (-math.inf, 0))[0]:
            self.in_flight[process] = (end, max(0, in_flight - 1))
        self.recent.append((end, latency_ms))
        self.failures += not ok
        self.first_end = end if self.first_end is None else min(self.first_end, end)
        self.last_end = end if self.last_end is None else max(self.last_end, end)

    def snapshot(self, now: float, users: int, elapsed_s: float | None, offered_rps: float | None = None
                 ) -> Snapshot:
        # sorting in place each second is cheap: the list is a sorted run plus one second of new rows
        self.latencies.sort()
        hi = now - self.lag_s
        lo = hi - self.window_s
        while self.recent and self.recent[0][0] < lo:
            self.recent.popleft()
        in_window = sorted(lat for end, lat in self.recent if end < hi)
        covered = hi - max(lo, self.first_end) if self.first_end is not None else 0.0
        p95 = exact_percentile(self.latencies, 0.95)
        recent = exact_percentile(in_window, 0.95)
        # before any completion, the load's own clock is the time without one
        idle = (hi - self.last_end if self.last_end is not None
                else elapsed_s - self.lag_s if elapsed_s is not None else None)
        return Snapshot(
            t=now, elapsed_s=elapsed_s, users=users, requests=len(self.latencies), failures=self.failures,
            p95_ms=None if math.isnan(p95) else p95, recent_p95_ms=None if math.isnan(recent) else recent,
            # less than a second of data is no rate at all: say nothing rather than 0.0
            recent_rps=len(in_window) / covered if covered >= 1.0 else None, window_s=min(self.window_s, covered),
            idle_s=None if idle is None else max(0.0, idle), offered_rps=offered_rps,
            in_flight=sum(n for _, n in self.in_flight.values()) if self.in_flight else None)
