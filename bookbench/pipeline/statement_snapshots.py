"""pg_stat_statements snapshots beside one scenario's load (pipeline/db_evidence.py reads their deltas): once a
second, in a thread of its own on a connection of its own. The snapshots from the load's start until the warm-up is
well over are kept (the measured window starts there), then only the latest few, so a long scenario's memory stays
flat."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from dataclasses import dataclass

import asyncpg

from bookbench.config.dsn import mask_dsn
from bookbench.db import statements
from bookbench.db.statements import Snapshot, Source

log = logging.getLogger(__name__)

SNAPSHOT_EVERY_S = 1.0
APPLICATION_NAME = "bookbench-statements"  # the snapshots' own connection
CONNECT_TIMEOUT_S = 10.0
QUERY_TIMEOUT_S = 5.0
# the snapshots kept from the load's start: the window starts at the first request plus the warm-up, which comes
# within seconds of Locust's start; after that only the latest few are kept (a long scenario's memory stays flat)
HEAD_S = 120.0
TAIL = 3


@dataclass(frozen=True)
class Mark:
    snap: Snapshot
    final: bool = False  # taken as the load stopped


class Snapshots:
    """pg_stat_statements snapshots in a thread of its own, on one connection of its own: a snapshot waiting on a
    stopped database delays nothing else; a failing one is logged and the next one tries again."""

    def __init__(self, dsn: str, same_role_as_service: bool, keep_head_until: float) -> None:
        self.dsn = dsn
        self.same_role = same_role_as_service
        self.keep_head_until = keep_head_until
        self.source: Source | None = None
        self.database: str | None = None
        self.not_measured: str | None = None
        self.failures = 0
        self.last_failure = ""
        self.head: list[Mark] = []
        self.tail: collections.deque[Mark] = collections.deque(maxlen=TAIL)
        self.texts: dict[statements.Key, str] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bookbench-statements", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float) -> None:
        """Take the last snapshot and the statements' texts, then close; a thread stuck on a stopped database is
        left to end on its own (daemon) after `timeout`."""
        self._stop.set()
        self._thread.join(timeout)

    def marks(self) -> list[Mark]:
        with self._lock:
            return sorted([*self.head, *self.tail], key=lambda m: m.snap.taken)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main())
        except Exception as exc:  # never into the run: the file says why instead
            with self._lock:
                if self.source is None:
                    self.not_measured = f"not measured: {self._masked(exc)}"
                else:
                    self.failures += 1
                    self.last_failure = self._masked(exc)
            log.warning("pg_stat_statements snapshots ended: %s", self._masked(exc))
        finally:
            loop.close()

    def _masked(self, exc: BaseException) -> str:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return text.replace(self.dsn, mask_dsn(self.dsn))

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.dsn, timeout=CONNECT_TIMEOUT_S,
                                     server_settings={"application_name": APPLICATION_NAME})

    async def _main(self) -> None:
        try:
            conn = await self._connect()
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self.not_measured = f"not measured: cannot connect to {mask_dsn(self.dsn)}: {self._masked(exc)}"
            return
        try:
            self.database = str(await conn.fetchval("SELECT current_database()"))
            role = str(await conn.fetchval("SELECT current_user")) if self.same_role else None
            found = await statements.probe(conn, role)
            if isinstance(found, str):
                self.not_measured = found
                return
            self.source = found
            while not self._stop.is_set():
                due = time.monotonic() + SNAPSHOT_EVERY_S
                conn = await self._take(conn, final=False)
                while not self._stop.is_set() and time.monotonic() < due:
                    await asyncio.sleep(min(0.05, max(0.0, due - time.monotonic())))
            conn = await self._take(conn, final=True)
            with contextlib.suppress(TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                texts = await statements.texts(conn, found, timeout=QUERY_TIMEOUT_S)
                with self._lock:
                    self.texts = texts
        finally:
            with contextlib.suppress(TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                await asyncio.wait_for(conn.close(), 2)
            if not conn.is_closed():
                conn.terminate()

    async def _take(self, conn: asyncpg.Connection, final: bool) -> asyncpg.Connection:
        """One snapshot; on failure (logged) a new connection for the next one."""
        assert self.source is not None
        try:
            if conn.is_closed():
                conn = await self._connect()
            snap = await statements.snapshot(conn, self.source, timeout=QUERY_TIMEOUT_S)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                asyncpg.InternalClientError) as exc:
            with self._lock:
                self.failures += 1
                self.last_failure = self._masked(exc)
            log.warning("a pg_stat_statements snapshot failed: %s", self._masked(exc))
            if not conn.is_closed():
                conn.terminate()
            return conn
        mark = Mark(snap, final)
        with self._lock:
            (self.head if snap.taken <= self.keep_head_until and not final else self.tail).append(mark)
        return conn
