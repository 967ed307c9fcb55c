"""The service when things go wrong: the database disappears (503) or a request overruns its deadline (504)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from bookbench.db.conn import connect
from bookbench.pipeline.stack import ServiceProcess
from tests.budget import budget
from tests.conftest import SMALL, seeded, service_on_own_cluster
from tests.service.test_service_api import auth, body

pytestmark = pytest.mark.integration


def test_database_gone_gives_503_not_500(tmp_path: Path) -> None:
    with service_on_own_cluster(tmp_path, "gone") as (pg, proc), \
            httpx.Client(base_url=proc.base_url, timeout=10) as client:
        assert client.post("/api/v1/appointments", json=body(), headers=auth(1)).status_code == 201
        pg.stop()
        for _ in range(3):  # pooled connections die first, then new connects are refused
            resp = client.post("/api/v1/appointments", json=body(), headers=auth(1))
            assert resp.status_code == 503, resp.text
            assert resp.json()["error"] == "database_unavailable"
        assert client.get("/readyz").status_code == 503
        assert client.get("/healthz").status_code == 200


def test_deadline_gives_504_and_cancels_the_query(new_db: Callable[[], str], tmp_path: Path) -> None:
    dsn = seeded(new_db())
    # 0.5 s on an idle machine, stretched: the healthy booking at the end is held to the same deadline
    deadline_s = budget(0.5)
    proc = ServiceProcess(dsn, log_path=tmp_path / "svc.log",
                          extra_env={"BOOKBENCH_REQUEST_TIMEOUT_S": f"{deadline_s:.3f}"})
    proc.start()
    provider = SMALL.providers_of(1)[0]

    async def hold_lock_and_book() -> tuple[int, float]:
        # hold the booking lock of (org 1, provider) so the service's booking has to wait for it
        holder = await connect(dsn)
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT pg_advisory_xact_lock(1, $1::int)", provider)
        try:
            async with httpx.AsyncClient(base_url=proc.base_url, timeout=10) as client:
                started = time.perf_counter()
                resp = await client.post("/api/v1/appointments", json=body(providerId=provider), headers=auth(1))
                return resp.status_code, time.perf_counter() - started
        finally:
            await tx.rollback()
            await holder.close()

    try:
        status, seconds = asyncio.run(hold_lock_and_book())
        assert status == 504
        assert seconds < deadline_s + budget(2.5)  # the 504 comes at the deadline, not at the end of the lock wait
        # the service is healthy afterwards and the cancelled query left no waiting backend behind
        with httpx.Client(base_url=proc.base_url, timeout=10) as client:
            assert client.post("/api/v1/appointments", json=body(providerId=provider), headers=auth(1)
                               ).status_code == 201
    finally:
        proc.stop()
