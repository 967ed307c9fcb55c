"""The service's own per-request timing (issue 27): handler time, time waiting for a pooled connection and time
holding one, kept for the most recent requests and summarised over a window by GET /stats/timing.

The hot path is three perf_counter() reads per connection and four float stores per request: GuardMiddleware puts a
RequestTiming in a context variable, db.acquired() adds to it, the middleware files it in the ring at the end. The
ring is four preallocated float arrays (32 bytes a request, 6.4 MB for 200,000) rather than a deque of tuples
(about 175 bytes a request): it is allocated once and never grows.
"""

from __future__ import annotations

import math
from array import array
from contextvars import ContextVar
from typing import Any

DEFAULT_RING_SIZE = 200_000
# the bands the latency budget reads: the requests whose handler time lies between these percentiles of the window's
BANDS = {"p50": (0.45, 0.55), "p95": (0.94, 0.96)}


class RequestTiming:
    """One request's connection time so far, in seconds; a request may acquire more than once (its key lookup, its
    endpoint): the times add up."""
    __slots__ = ("held_s", "pool_wait_s")

    def __init__(self) -> None:
        self.pool_wait_s = 0.0  # in pool.acquire(): waiting for a free connection, or opening a new one
        self.held_s = 0.0  # from acquire to release: execution, lock waits, round trips, and whatever the request did
        # meanwhile (with FastAPI's request-scoped dependency the connection goes back after the response is sent)


# set by GuardMiddleware for the requests it counts; None elsewhere (uncounted paths, the dispatcher, start-up)
CURRENT: ContextVar[RequestTiming | None] = ContextVar("bookbench_request_timing", default=None)


class TimingRing:
    """The last `size` counted requests: end (epoch s), handler, pool wait and held time (s)."""

    def __init__(self, size: int = DEFAULT_RING_SIZE) -> None:
        if size < 1:
            raise ValueError("a timing ring holds at least one request")
        self.size = size
        self.recorded = 0  # ever: the next slot is recorded % size
        zeros = bytes(8 * size)
        self.end, self.handler, self.pool_wait, self.held = (array("d", zeros) for _ in range(4))

    def record(self, end: float, handler_s: float, timing: RequestTiming) -> None:
        i = self.recorded % self.size
        self.end[i] = end
        self.handler[i] = handler_s
        self.pool_wait[i] = timing.pool_wait_s
        self.held[i] = timing.held_s
        self.recorded += 1

    def snapshot(self) -> Snapshot:
        """A copy to summarise off the event loop (the ring keeps changing while requests end)."""
        n = min(self.recorded, self.size)
        # the oldest entry still held; slots are filled in order, so before wrapping it is slot 0
        oldest = self.end[self.recorded % self.size] if self.recorded > self.size else (self.end[0] if n else None)
        return Snapshot(n, self.recorded > self.size, oldest, self.end[:n], self.handler[:n], self.pool_wait[:n],
                        self.held[:n])


class Snapshot:
    __slots__ = ("end", "evicted", "handler", "held", "n", "oldest", "pool_wait")

    def __init__(self, n: int, evicted: bool, oldest: float | None, end: array[float], handler: array[float],
                 pool_wait: array[float], held: array[float]) -> None:
        self.n, self.evicted, self.oldest = n, evicted, oldest
        self.end, self.handler, self.pool_wait, self.held = end, handler, pool_wait, held

    def summary(self, since: float, until: float) -> dict[str, Any]:
        """The requests that ended in [since, until), shaped as bookbench's ServiceTiming (artifacts/db_evidence.py).

        No request in the window: `requests` 0, every mean None and no bands, so that it reads as "nothing measured"
        and never as zero times. `complete` is False when requests were evicted from the ring and its oldest one
        ended after `since`: the window's start is gone and the figures cover only its later part.
        """
        rows = [(h, p, d) for e, h, p, d in zip(self.end, self.handler, self.pool_wait, self.held, strict=True)
                if since <= e < until]
        complete = not (self.evicted and self.oldest is not None and self.oldest > since)
        if not rows:
            return {"requests": 0, "handler_ms_mean": None, "pool_wait_ms_mean": None, "db_ms_mean": None,
                    "bands": {}, "complete": complete}
        handlers = sorted(row[0] for row in rows)
        bands: dict[str, dict[str, Any]] = {}
        for name, (lo_q, hi_q) in BANDS.items():
            # nearest-rank percentiles of the handler times; the band holds at least the request at the lower one
            lo, hi = _nearest_rank(handlers, lo_q), _nearest_rank(handlers, hi_q)
            bands[name] = _means([row for row in rows if lo <= row[0] <= hi])
        means = _means(rows)
        return {"requests": means["requests"], "handler_ms_mean": means["handler_ms"],
                "pool_wait_ms_mean": means["pool_wait_ms"], "db_ms_mean": means["db_ms"], "bands": bands,
                "complete": complete}


def _means(rows: list[tuple[float, float, float]]) -> dict[str, Any]:
    n = len(rows)
    return {"requests": n, "handler_ms": _ms(math.fsum(r[0] for r in rows) / n),
            "pool_wait_ms": _ms(math.fsum(r[1] for r in rows) / n), "db_ms": _ms(math.fsum(r[2] for r in rows) / n)}


def _nearest_rank(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 4)  # to 0.1 us: finer is noise
