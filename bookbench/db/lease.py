"""One measuring command per database: a session advisory lock held for a command's whole life, so that a second
run, seed or re-index cannot reset or re-index a database another command is measuring (each would delete or
count the other's bookings). The holder names itself in its connection's last query, which any other session of
the role can read in pg_stat_activity: the refusal says which command (pid, run folder) holds the database."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg

from bookbench.config.dsn import mask_dsn
from bookbench.db.conn import connect
from bookbench.errors import DatabaseError, EnvironmentFailure

# advisory locks are scoped to one database: two databases of one cluster never wait for each other
LEASE_KEY = 7426010
_TAG = re.compile(r"/\* bookbench lease: (.*?) \*/")
_HOLDER_SQL = f"""
SELECT a.pid, a.query FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = {LEASE_KEY}
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


class DatabaseBusy(EnvironmentFailure):
    """Another bookbench command is measuring (or re-indexing) this database."""


def describe_holder(pid: int, query: str | None) -> str:
    """`pid 123, bookbench run, folder results/x` from the holder's tagged query; the backend pid otherwise."""
    found = _TAG.search(query or "")
    return found.group(1) if found else f"another session (PostgreSQL backend pid {pid})"


def _tag(what: str) -> str:
    # the tag sits inside a SQL comment: nothing in it may close the comment
    return f"pid {os.getpid()}, {what}".replace("*/", "* /")


async def _holder(conn: asyncpg.Connection) -> str:
    row = await conn.fetchrow(_HOLDER_SQL)
    return "another session" if row is None else describe_holder(int(row["pid"]), row["query"])


def _hold(dsn: str, what: str, answer: queue.Queue[str | None], release: threading.Event) -> None:
    """The lease's thread: its own event loop and connection, which keeps the lock until `release` is set."""

    async def main() -> None:
        try:
            conn = await connect(dsn)
        except DatabaseError as exc:
            answer.put(f"error: {exc}")
            return
        try:
            if not await conn.fetchval(f"SELECT pg_try_advisory_lock({LEASE_KEY}) /* bookbench lease: {_tag(what)} */"):
                answer.put(await _holder(conn))
                return
            answer.put(None)
            await asyncio.to_thread(release.wait)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            answer.put(f"error: {exc}")
        finally:
            try:
                await conn.close(timeout=2)
            except Exception:  # a stopped or restarted server: the lock went with the connection anyway
                conn.terminate()

    asyncio.run(main())


@contextmanager
def database_lease(dsn: str, what: str) -> Iterator[None]:
    """Hold `dsn`'s lease while the block runs; DatabaseBusy (one line naming the holder) when another command
    holds it. `what` describes this command for the refusal another one will print (e.g. "bookbench run, folder
    results/x")."""
    answer: queue.Queue[str | None] = queue.Queue()
    release = threading.Event()
    # a daemon: a lease must never keep a finished (or killed) command alive
    thread = threading.Thread(target=_hold, args=(dsn, what, answer, release), name="bookbench-lease", daemon=True)
    thread.start()
    holder = answer.get()
    if holder is not None:
        thread.join(5)
        if holder.startswith("error: "):
            raise DatabaseError(f"cannot take the database lease on {mask_dsn(dsn)}: {holder[7:]}")
        raise DatabaseBusy(f"database {mask_dsn(dsn)} is in use by another bookbench command ({holder}); wait for "
                           "it to end, or use another database")
    try:
        yield
    finally:
        release.set()
        thread.join(5)
