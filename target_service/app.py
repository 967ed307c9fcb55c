"""App factory: settings, pool opened in lifespan, routes, middleware and error mapping."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

import asyncpg
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response

from target_service import booking, errors, protocol, queries
from target_service.auth import KeyCache, listen_for_key_changes
from target_service.db import SERVER_UNAVAILABLE, DatabaseUnavailable, acquired, open_pool
from target_service.middleware import GuardMiddleware
from target_service.routes import rest, vapi
from target_service.settings import Settings
from target_service.timing import TimingRing

# Errors that mean "the database is not there right now" rather than "this request is wrong": what db.acquired()
# makes of a lost connection, and the server's own "cannot serve you" errors wherever they are raised. Not OSError or
# the driver's InterfaceError as such: outside a database call, or on a live connection, those are bugs (a 500).
_UNAVAILABLE: tuple[type[Exception], ...] = (DatabaseUnavailable, *SERVER_UNAVAILABLE)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()  # type: ignore[call-arg]  # filled from the environment
    protocol.install(settings.header_timeout_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await open_pool(settings.database_url, settings.pool_min_size, settings.pool_max_size)
        app.state.key_cache = KeyCache(settings.auth_cache_ttl_s)
        listener = asyncio.create_task(listen_for_key_changes(settings.database_url, app.state.key_cache))
        try:
            yield
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await app.state.pool.close()

    app = FastAPI(title="bookbench reference booking service", version="1.0", lifespan=lifespan)
    app.include_router(rest.router)
    app.include_router(vapi.router)
    counts: Counter[int] = Counter()
    timings = TimingRing(settings.timing_ring_size) if settings.timing_ring_size else None
    app.add_middleware(GuardMiddleware, max_body_bytes=settings.max_body_bytes,
                       timeout_s=settings.request_timeout_s, counts=counts,
                       calibration_delay_s=settings.calibration_delay_ms / 1000, timings=timings)

    errors.install(app)

    @app.exception_handler(booking.Refusal)
    async def on_refusal(_: Request, exc: booking.Refusal) -> Response:
        return errors.error_response(exc.status_code, exc.code, exc.message)

    @app.exception_handler(asyncpg.InvalidTransactionStateError)
    async def on_misconfigured(_: Request, exc: asyncpg.InvalidTransactionStateError) -> Response:
        return errors.error_response(503, "database_misconfigured", errors.misconfiguration(exc))

    @app.exception_handler(asyncpg.QueryCanceledError)
    async def on_cancelled(_: Request, exc: asyncpg.QueryCanceledError) -> Response:
        return errors.error_response(504, "deadline_exceeded", "query cancelled")

    for exc_type in _UNAVAILABLE:
        app.add_exception_handler(exc_type, _on_unavailable)

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["ops"])
    async def readyz(request: Request) -> JSONResponse:
        try:
            async with acquired(request.app.state.pool) as conn:
                await conn.fetchval("SELECT 1", timeout=2)
        except _UNAVAILABLE:
            return JSONResponse({"status": "unavailable", "database": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ready", "database": "ok"})

    @app.get("/stats", tags=["ops"])
    async def stats(request: Request) -> dict[str, object]:
        # what the service itself handled, to reconcile against the load generator's count
        snapshot = dict(counts)
        out: dict[str, object] = {"handled": sum(snapshot.values()),
                                  "by_status": {str(k): v for k, v in sorted(snapshot.items())},
                                  # "listening": key lookups cached, revocations heard; "off": every lookup queried
                                  "auth_cache": request.app.state.key_cache.state}
        # the notification outbox (pending / sent / dead-lettered per channel) and the breakers; absent, not an
        # error, when the database cannot answer
        try:
            async with acquired(request.app.state.pool) as conn:
                rows = await conn.fetch(queries.OUTBOX_STATS, timeout=2)
                breakers = await conn.fetch(queries.BREAKERS, timeout=2)
        except _UNAVAILABLE:
            return out
        out["notifications"] = {"outbox": {f"{r['channel']}.{r['status']}": r["n"] for r in rows},
                                "breakers": {r["provider"]: r["state"] for r in breakers}}
        return out

    @app.get("/stats/timing", tags=["ops"])
    async def stats_timing(since: Annotated[float, Query(ge=0, allow_inf_nan=False)],
                           until: Annotated[float, Query(ge=0, allow_inf_nan=False)]) -> Response:
        # the counted requests that ended in [since, until) (epoch seconds), from this worker process's ring
        if until < since:
            return errors.error_response(422, "invalid_request", "query.until: must not be before since",
                                         fields=[{"field": "query.until", "problem": "must not be before since",
                                                  "type": "window"}])
        if timings is None:
            return errors.error_response(404, "timing_off", "this service's per-request timing is switched off "
                                         "(BOOKBENCH_TIMING_RING_SIZE=0)")
        # copied on the loop (no request can end meanwhile), summarised in a thread: up to 200,000 requests take
        # tens of milliseconds that the requests in flight should not wait for
        snapshot = timings.snapshot()
        summary = await asyncio.to_thread(snapshot.summary, since, until)
        return JSONResponse(summary)

    return app


async def _on_unavailable(_: Request, exc: Exception) -> Response:
    cause = exc.cause if isinstance(exc, DatabaseUnavailable) else exc
    return errors.error_response(503, "database_unavailable", type(cause).__name__)
