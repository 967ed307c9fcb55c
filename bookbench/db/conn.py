"""Short-lived asyncpg connections for the CLI's admin work, with errors a user can read."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import asyncpg

from bookbench.config.dsn import mask_dsn
from bookbench.errors import DatabaseError

T = TypeVar("T")

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"  # package data: schema/ and indexes/


async def connect(dsn: str, timeout: float = 10.0) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn, timeout=timeout)
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise DatabaseError(f"cannot connect to {mask_dsn(dsn)}: {exc}") from exc


def run_with(dsn: str, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Open one connection, run `work` on it, close it: the sync CLI's doorway to asyncpg."""

    async def _main() -> T:
        conn = await connect(dsn)
        try:
            return await work(conn)
        finally:
            await conn.close()

    return asyncio.run(_main())


def database_answers(dsn: str, timeout: float) -> str | None:
    """None when a new connection gets an answer to SELECT 1 within `timeout`, else what went wrong (one line)."""

    async def probe() -> None:
        conn = await asyncpg.connect(dsn, timeout=timeout)
        try:
            await conn.fetchval("SELECT 1", timeout=timeout)
        finally:
            await conn.close(timeout=timeout)

    try:
        asyncio.run(asyncio.wait_for(probe(), timeout * 2))
    # InternalClientError: a server stopped (SIGSTOP) and continued in the middle of the probe's protocol exchange
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError) as exc:
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return None
