"""Short-lived asyncpg connections for the CLI's admin work, with errors a user can read."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import asyncpg

from bookbench.errors import DatabaseError
from bookbench.spec.dsn import mask_dsn

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
