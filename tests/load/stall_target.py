"""A target with a known answer: every request takes SERVICE_MS, and every PERIOD_S seconds the target stalls for
STALL_S (a request arriving in a stall waits until it ends). Speaks just enough of the booking API for the
locustfile: GETs answer 200, a booking 201 with an id, a cancel 200.

Run: python tests/load/stall_target.py PORT [SERVICE_MS PERIOD_S STALL_S]
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import time

from aiohttp import web

SERVICE_MS, PERIOD_S, STALL_S = 10.0, 5.0, 1.0


def stall_left(now: float, period_s: float, stall_s: float) -> float:
    """Seconds until the current stall ends (0 outside a stall); stalls start at every multiple of period_s."""
    phase = now % period_s
    return stall_s - phase if phase < stall_s else 0.0


def expected_latency_ms(q: float, service_ms: float, period_s: float, stall_s: float) -> float:
    """The q-quantile of latency from arrival for arrivals spread evenly in time: a share stall_s/period_s waits a
    uniform (0, stall_s] before its service time, the rest only the service time."""
    stalled = stall_s / period_s
    if q <= 1 - stalled:
        return service_ms
    return service_ms + 1000.0 * stall_s * (q - (1 - stalled)) / stalled


def app(service_ms: float, period_s: float, stall_s: float) -> web.Application:
    ids = itertools.count(1)

    async def handle(request: web.Request) -> web.Response:
        await asyncio.sleep(stall_left(time.time(), period_s, stall_s))
        await asyncio.sleep(service_ms / 1000)
        if request.method == "POST" and request.path == "/api/v1/appointments":
            return web.json_response({"appointment_id": next(ids)}, status=201)
        return web.json_response({})

    application = web.Application()
    application.router.add_route("*", "/{tail:.*}", handle)
    return application


if __name__ == "__main__":
    port = int(sys.argv[1])
    values = [float(x) for x in sys.argv[2:5]] or [SERVICE_MS, PERIOD_S, STALL_S]
    web.run_app(app(*values), host="127.0.0.1", port=port, print=None)
