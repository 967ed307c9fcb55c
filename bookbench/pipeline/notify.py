"""Path B beside the service: the two fake providers and N dispatchers as processes, the faults of each scenario,
and after the load the drain and the facts (outbox, breaker, backlog, what the providers received)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bookbench import net
from bookbench.artifacts import notifications as facts_file
from bookbench.artifacts.notifications import BreakerEvent, NotificationFacts, OutboxFile
from bookbench.config.notifications import Faults
from bookbench.db import notifications as outbox
from bookbench.db.conn import run_with
from bookbench.db.embedded import BIND_ATTEMPTS, address_in_use, free_port
from bookbench.errors import DatabaseError, ServiceError
from bookbench.pipeline.stack import stop_group

# the credentials the fakes check and the dispatcher sends: fixed test values, never real secrets
FAKE_CREDENTIALS = {
    "BOOKBENCH_TWILIO_ACCOUNT_SID": "AC-bookbench", "BOOKBENCH_TWILIO_AUTH_TOKEN": "bookbench-sms-token",
    "BOOKBENCH_GOOGLE_CLIENT_ID": "bookbench-client", "BOOKBENCH_GOOGLE_CLIENT_SECRET": "bookbench-client-secret",
    "BOOKBENCH_GOOGLE_REFRESH_TOKEN": "bookbench-refresh-token",
}


class NotifyStack:
    """Fake SMS gateway, fake calendar and `dispatchers` dispatcher processes, all on 127.0.0.1."""

    def __init__(self, dsn: str, dispatchers: int, logs: Path, records: Path,
                 dispatcher_env: dict[str, str] | None = None) -> None:
        self.dsn = dsn
        self.dispatcher_env = dispatcher_env or {}  # BOOKBENCH_* dispatcher settings (tests tune retries with it)
        self.dispatchers = dispatchers
        self.logs = logs
        self.records = records  # the run's notifications/ folder (or a temporary one): the providers' records
        self.ports = {"sms": free_port(), "calendar": free_port()}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def url(self, kind: str) -> str:
        return f"http://127.0.0.1:{self.ports[kind]}"

    def record_file(self, kind: str) -> Path:
        return facts_file.received_file(self.records, kind)

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        with (self.logs / f"{name}.log").open("wb") as log:
            self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                                env={**os.environ, **FAKE_CREDENTIALS, **env})

    def _spawn_fake(self, kind: str) -> None:
        self._spawn(f"fake_{kind}", [sys.executable, "-m", "bookbench.fakes", kind, "--port", str(self.ports[kind]),
                                     "--record", str(self.record_file(kind))], {})

    def start(self, timeout: float = 30.0) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        self.records.mkdir(parents=True, exist_ok=True)
        for kind in ("sms", "calendar"):
            self._spawn_fake(kind)
        deadline = time.monotonic() + timeout
        for kind in ("sms", "calendar"):
            attempts = 1
            while True:
                try:
                    if net.get(f"{self.url(kind)}/_bookbench/state", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                exited = self.procs[f"fake_{kind}"].poll() is not None
                if exited and attempts < BIND_ATTEMPTS and address_in_use(
                        (self.logs / f"fake_{kind}.log").read_text(errors="replace")):
                    # its port was taken between free_port() and the fake's bind: another port
                    attempts += 1
                    self.ports[kind] = free_port()
                    self._spawn_fake(kind)
                    continue
                if exited or time.monotonic() > deadline:
                    self.stop()
                    raise ServiceError(f"the fake {kind} provider did not start (see logs/fake_{kind}.log)")
                time.sleep(0.1)
        env = {"BOOKBENCH_DATABASE_URL": self.dsn, "BOOKBENCH_SMS_BASE_URL": self.url("sms"),
               "BOOKBENCH_CALENDAR_BASE_URL": self.url("calendar"),
               "BOOKBENCH_GOOGLE_TOKEN_URL": f"{self.url('calendar')}/token", **self.dispatcher_env}
        for i in range(self.dispatchers):
            self._spawn(f"dispatcher{i + 1}", [sys.executable, "-m", "target_service.notify"], env)

    def set_faults(self, faults: Faults) -> None:
        """The scenario's provider behaviour; its windows count from now (call it as the load starts)."""
        for kind in ("sms", "calendar"):
            self.set_faults_for(kind, getattr(faults, kind).model_dump(mode="json"))

    def set_faults_for(self, kind: str, faults: dict[str, Any]) -> None:
        net.put(f"{self.url(kind)}/_bookbench/faults", json=faults, timeout=5).raise_for_status()

    def dead(self) -> str | None:
        """The first part that exited, named, or None while all run."""
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                return f"{name} exited with code {proc.returncode} (see logs/{name}.log)"
        return None

    def cannot_deliver(self) -> str | None:
        """Why this scenario's outbox can no longer drain, or None. A dead dispatcher alone is not a reason: the
        others take over its claimed rows when their lease runs out; a dead provider, or no dispatcher left, is."""
        gone = self.exited()
        for name, code in gone.items():
            if not name.startswith("dispatcher"):
                return f"{name} exited with code {code} (see logs/{name}.log)"
        dispatchers = [name for name in self.procs if name.startswith("dispatcher")]
        if dispatchers and all(name in gone for name in dispatchers):
            return "no dispatcher left: " + ", ".join(f"{name} exited with code {gone[name]}" for name in dispatchers)
        return None

    def exited(self) -> dict[str, int]:
        """Every part that has exited, with its exit code."""
        return {name: code for name, proc in self.procs.items() if (code := proc.poll()) is not None}

    def log_file(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def stop(self) -> None:
        # dispatchers first, so none is left calling a provider that is gone
        for name in sorted(self.procs, key=lambda n: not n.startswith("dispatcher")):
            stop_group(self.procs[name], 10)
        self.procs.clear()


@contextmanager
def notify_stack(dsn: str, dispatchers: int, logs: Path, records: Path) -> Iterator[NotifyStack]:
    stack = NotifyStack(dsn, dispatchers, logs, records)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


class BacklogSampler:
    """This scenario's pending notifications, sampled about once a second in a thread of its own while the load
    runs: a sample that waits on a stopped database (up to its 10 s connect timeout) delays no probe and no display.
    `with BacklogSampler(...):` starts and stops it; samples land in `into`."""

    EVERY_S = 1.0

    def __init__(self, dsn: str, id_after: int, into: list[tuple[float, int]]) -> None:
        self.dsn = dsn
        self.id_after = id_after
        self.into = into
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="backlog-sampler", daemon=True)

    def __enter__(self) -> BacklogSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        # not joined (a sample may be waiting on its connect timeout); the lock keeps a late one out of `into`
        with self._lock:
            self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            # a gap in the backlog series when it fails; a database that stays down is the watchdog's to name
            with contextlib.suppress(DatabaseError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                left = run_with(self.dsn, lambda c: outbox.pending(c, self.id_after))
                with self._lock:
                    if not self._stop.is_set():
                        self.into.append((time.time(), left))
            self._stop.wait(max(0.0, began + self.EVERY_S - time.monotonic()))


def drain(dsn: str, id_after: int, timeout_s: float, backlog: list[tuple[float, int]],
          stopped: Callable[[], str | None]) -> tuple[float | None, str | None]:
    """Wait until this scenario's notifications are delivered or dead-lettered, sampling the backlog. Returns
    (when it drained, epoch s, or None; why it stopped waiting before that, or None when the timeout ran out)."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = run_with(dsn, lambda c: outbox.pending(c, id_after))
        backlog.append((time.time(), left))
        if left == 0:
            return time.time(), None
        if (why := stopped()) is not None:
            return None, why
        if time.monotonic() > deadline:
            return None, None
        time.sleep(0.5)


async def stream_outbox(conn: asyncpg.Connection, id_after: int, path: Path) -> int:
    """This scenario's outbox rows into `path` (Parquet, whole or absent), facts_file.BATCH_ROWS at a time through
    a cursor: a soak's half a million rows never sit in memory together. Returns how many."""
    with facts_file.OutboxWriter(path) as writer:
        async for batch in outbox.outbox_batches(conn, id_after, facts_file.BATCH_ROWS):
            writer.write(batch)
    return writer.rows


def record_facts(dsn: str, path: Path, scenario: str, dispatchers: int, faults: Faults, id_after: int,
                 window: tuple[float, float], drain_timeout_s: float, drained: tuple[float | None, str | None],
                 backlog: list[tuple[float, int]], exited: dict[str, int]) -> NotificationFacts:
    """`drained`: what drain() returned; `exited`: the parts of the stack that had exited by then. The rows go
    first, to `<scenario>_outbox.parquet`; the JSON that names them is written last, so that facts present are
    always whole."""
    rows_file = facts_file.outbox_file(path)
    rows = run_with(dsn, lambda c: stream_outbox(c, id_after, rows_file))
    events = run_with(dsn, lambda c: outbox.breaker_log(c, window[0]))
    facts = NotificationFacts(
        scenario=scenario, dispatchers=dispatchers, faults=faults.model_dump(mode="json"), load_start=window[0],
        load_end=window[1], drain_timeout_s=drain_timeout_s, drained_at=drained[0], drain_stopped=drained[1],
        exited=exited, backlog=backlog, breaker=[BreakerEvent(**e) for e in events],
        outbox=OutboxFile(file=rows_file.name, rows=rows))
    facts_file.write(path, facts)
    return facts
