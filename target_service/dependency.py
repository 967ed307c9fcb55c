"""The routes' per-request database connection, lent from the pool in db.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from target_service.db import acquired


async def connection(request: Request) -> AsyncIterator[asyncpg.Connection]:
    # the route's errors are thrown in at the yield, so that a lost connection becomes a DatabaseUnavailable
    async with acquired(request.app.state.pool) as conn:
        yield conn


# scope="function": the connection goes back to the pool when the endpoint returns, before its response is built
# and sent (FastAPI's default holds it until the response is out). Pool waiters get it sooner, and the connection-held
# time /stats/timing reports is the database's, not the response's.
Conn = Annotated[asyncpg.Connection, Depends(connection, scope="function")]

