"""ASGI middleware: body-size limit (413), per-request deadline (504, or 408 when the time went to waiting for the
client's body), a count of handled requests and their timing (target_service/timing.py), and the calibration-only
delay (BOOKBENCH_CALIBRATION_DELAY_MS).

Written as plain ASGI rather than BaseHTTPMiddleware: that one copies every body through a stream and costs
measurable throughput, which is the thing this service exists to show honestly.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from target_service.timing import CURRENT, RequestTiming, TimingRing


async def _send_json(send: Send, status: int, body: dict[str, Any], close: bool = False) -> None:
    payload = orjson.dumps(body)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    if close:
        headers.append((b"connection", b"close"))  # uvicorn then closes the connection after this answer
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


def _spin(seconds: float) -> None:
    """Busy-wait: a slower code path costs CPU and holds the event loop; a sleep would do neither."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


UNCOUNTED_PATHS = frozenset({"/stats", "/stats/timing", "/healthz", "/readyz"})


class GuardMiddleware:
    """Refuses oversized bodies, enforces the deadline, counts responses by status code and files the timing of
    each counted request in `timings` (None: not timed)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, timeout_s: float, counts: Counter[int],
                 calibration_delay_s: float = 0.0, timings: TimingRing | None = None) -> None:
        self.app = app
        self.timings = timings
        self.calibration_delay_s = calibration_delay_s
        self.max_body_bytes = max_body_bytes
        self.timeout_s = timeout_s
        self.counts = counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        entered = time.perf_counter()
        # what the load sent, for reconciling with the load generator: the reconciler's own /stats and the
        # liveness probes a run sends every second (bookbench's watchdog) are not load
        counted = scope.get("path") not in UNCOUNTED_PATHS
        timing: RequestTiming | None = None
        if counted and self.timings is not None:
            # seen by db.acquired() in this request's task and any it starts (they copy the context)
            timing = RequestTiming()
            CURRENT.set(timing)
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_body_bytes:
                self.counts[413] += 1
                await _send_json(send, 413, {"error": "body_too_large",
                                             "detail": f"request body exceeds {self.max_body_bytes} bytes"})
                self._time(entered, timing)
                return

        received = 0
        started = False
        status = 500
        # waiting on the client for the rest of its body: a deadline that runs out now is the client's (408)
        awaiting_client = False
        body_complete = False

        async def limited_receive() -> Message:
            # chunked bodies carry no content-length: count as they arrive
            nonlocal received, awaiting_client, body_complete
            # no try/finally: when the deadline cancels this wait, the handler below must still see the flag set
            awaiting_client = not body_complete
            message = await receive()
            awaiting_client = False
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_complete = True
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                # an HTTPException passes through FastAPI's body parsing untouched (anything else becomes a 400)
                raise HTTPException(413, detail=f"request body exceeds {self.max_body_bytes} bytes")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
            await send(message)

        if self.calibration_delay_s and scope["path"].startswith("/api/"):
            _spin(self.calibration_delay_s)
        try:
            async with asyncio.timeout(self.timeout_s):
                await self.app(scope, limited_receive, tracking_send)
        except TimeoutError:
            if awaiting_client and not started:
                # a slow or stalled client is not a server error: 408, and the connection closes (what is left of
                # the body can no longer be told from the next request)
                status = 408
                await _send_json(send, 408, {"error": "request_timeout", "detail": "the request body did not "
                                             f"arrive within {self.timeout_s:g} s"}, close=True)
            else:
                status = 504
                if not started:
                    await _send_json(send, 504, {"error": "deadline_exceeded",
                                                 "detail": f"request took longer than {self.timeout_s:g} s"})
        finally:
            if counted:
                self.counts[status] += 1
                self._time(entered, timing)

    def _time(self, entered: float, timing: RequestTiming | None) -> None:
        # after the app returned: the response is sent and every connection the request took is back in the pool
        if timing is not None and self.timings is not None:
            self.timings.record(time.time(), time.perf_counter() - entered, timing)
