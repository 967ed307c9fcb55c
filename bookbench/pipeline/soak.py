"""The soak sampler: beside every scenario, a probe every `probe_every_s` (10 s by default) of the service's
resident memory and the database's connections, table growth, vacuum and outbox backlog, appended to
db/<scenario>_soak.jsonl (issue 28 item 3).

A thread with its own event loop and one connection of its own (db/soak_probe.connect: application_name
bookbench-soak, a read-only session with statement and lock timeouts, whatever database the user's --dsn names): a
probe that waits on a stopped database delays no probe of the watchdog and no display. It never raises into the run;
what it cannot read is named in each probe's not_measured. One probe as the load starts and one as it stops frame
the scenario.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from pathlib import Path

import asyncpg
import psutil

from bookbench.artifacts import soak
from bookbench.config.dsn import mask_dsn
from bookbench.db import soak_probe

log = logging.getLogger(__name__)

# tests (and a curious user) shorten the period without editing scenarios.yaml
PERIOD_ENV = "BOOKBENCH_SOAK_PROBE_S"
_CONNECT_TIMEOUT_S = 10.0
_LAST_PROBE_WAIT_S = 6.0  # stop(): the closing probe gets this long before the thread is left to end on its own


def period(probe_every_s: float) -> float:
    """The scenario's period, or BOOKBENCH_SOAK_PROBE_S when set to a positive number."""
    with contextlib.suppress(ValueError):
        forced = float(os.environ.get(PERIOD_ENV, ""))
        if forced > 0:
            return forced
    return probe_every_s


def service_rss(roots: list[int]) -> tuple[int, int]:
    """(resident bytes, processes) of the service's processes and all their children (uvicorn's workers): each
    process counted once. Raises psutil.Error when none can be read."""
    procs: dict[int, psutil.Process] = {}
    for pid in roots:
        with contextlib.suppress(psutil.Error):
            root = psutil.Process(pid)
            procs[root.pid] = root
            for child in root.children(recursive=True):
                procs[child.pid] = child
    total, counted = 0, 0
    for proc in procs.values():
        with contextlib.suppress(psutil.Error):  # a worker that just exited
            total += int(proc.memory_info().rss)
            counted += 1
    if not counted:
        raise psutil.NoSuchProcess(roots[0] if roots else 0, msg="the service's processes are gone")
    return total, counted


class SoakSampler:
    """`with SoakSampler(path, dsn, service_pids, every_s):` probes until the block ends. `dsn` None: no database
    (a target-only run); `service_pids` None: the service is not ours, and `rss_why` says why."""

    def __init__(self, path: Path, dsn: str | None, service_pids: list[int] | None, every_s: float,
                 rss_why: str = "not measured: the service is not a process of this run") -> None:
        self.path = path
        self.dsn = dsn
        self.service_pids = service_pids
        self.rss_why = rss_why
        self.every_s = every_s
        self.probes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bookbench-soak", daemon=True)

    def __enter__(self) -> SoakSampler:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(_LAST_PROBE_WAIT_S)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main())
        except Exception:  # never into the run: the file simply ends
            log.exception("soak sampler ended")
        finally:
            loop.close()

    async def _main(self) -> None:
        conn: asyncpg.Connection | None = None
        try:
            while True:
                due = time.monotonic() + self.every_s
                conn = await self._probe(conn)
                if self._stop.is_set():
                    return
                while not self._stop.is_set() and time.monotonic() < due:
                    await asyncio.sleep(min(0.1, max(0.0, due - time.monotonic())))
                if self._stop.is_set():  # the closing probe: the scenario's state as its load stopped
                    conn = await self._probe(conn)
                    return
        finally:
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)

    async def _probe(self, conn: asyncpg.Connection | None) -> asyncpg.Connection | None:
        fields: dict[str, object] = {"t": time.time()}
        missing: dict[str, str] = {}
        if self.service_pids is None:
            missing["rss"] = self.rss_why
        else:
            try:
                fields["rss_bytes"], fields["service_processes"] = service_rss(self.service_pids)
            except psutil.Error as exc:
                missing["rss"] = f"not measured: {exc}"
        if self.dsn is None:
            missing["database"] = "not measured: the run has no database connection (a target-only run)"
        else:
            conn, db_fields = await self._database(conn)
            reasons = db_fields.pop("not_measured", {})
            missing.update(reasons if isinstance(reasons, dict) else {})
            fields.update(db_fields)
        try:
            soak.append(self.path, soak.Probe.model_validate({**fields, "not_measured": missing}))
            self.probes += 1
        except (OSError, ValueError) as exc:
            log.warning("soak probe not written to %s: %s", self.path, exc)
        return conn

    async def _database(self, conn: asyncpg.Connection | None) -> tuple[asyncpg.Connection | None, dict[str, object]]:
        assert self.dsn is not None
        try:
            if conn is None or conn.is_closed():
                conn = await soak_probe.connect(self.dsn, _CONNECT_TIMEOUT_S)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            why = f"not measured: cannot connect to {mask_dsn(self.dsn)}: {type(exc).__name__}"
            return None, {"not_measured": {"database": why}}
        return conn, await soak_probe.probe(conn)
