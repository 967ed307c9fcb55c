"""What the service's backends are waiting on, sampled (issue 27 item 2): a side connection reads pg_stat_activity
of the backends with the service's application_name in the run's database, `hz` times a second, in a thread with
its own event loop (a sample stuck on a stopped database delays no probe and no display), and classifies each busy
backend into WAIT_CATEGORIES. Per window, the share of observations in each category and the mean number of busy
backends (WaitShares).

The sampler never raises into the run: a failure to start sets `not_measured` ("not measured: ..."), an error later
ends sampling and is named in the shares of any window it cut short.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
import time
from array import array
from collections import Counter
from typing import Any

import asyncpg

from bookbench.artifacts.db_evidence import WAIT_CATEGORIES, WaitShares
from bookbench.config.dsn import mask_dsn

SERVICE_APPLICATION_NAME = "bookbench-service"  # target_service/db.py open_pool sets it on every pooled connection
SAMPLER_APPLICATION_NAME = "bookbench-waits"  # the sampler's own connection: never one of the service's

_INDEX = {name: i for i, name in enumerate(WAIT_CATEGORIES)}
_WIDTH = len(WAIT_CATEGORIES)
# pg_stat_get_activity() rather than the pg_stat_activity view: the view joins pg_database and pg_authid for names
# the sampler never reads. `hidden`: a backend of a role whose activity this role may not see (its state and wait
# event read NULL, its query '<insufficient privilege>'); a backend just starting also has a NULL state, not hidden.
_SAMPLE = """
SELECT state, wait_event_type, wait_event, state IS NULL AND query = '<insufficient privilege>' AS hidden
  FROM pg_stat_get_activity(NULL)
 WHERE datid = $1 AND application_name = $2 AND pid <> pg_backend_pid()
"""
_SETUP = """
SELECT (SELECT oid FROM pg_database WHERE datname = current_database()) AS datid,
       current_setting('track_activities')::bool AS tracking,
       current_user AS me
"""
_CONNECT_TIMEOUT_S = 10.0
_QUERY_TIMEOUT_S = 5.0  # a sample slower than this: the database is stopped or saturated beyond sampling


def classify(state: str | None, wait_event_type: str | None, wait_event: str | None) -> str | None:
    """The category of one backend at one instant, or None when it is not an observation (idle, or no state)."""
    if state is None or state == "idle":
        return None
    if state.startswith("idle in transaction"):  # also "idle in transaction (aborted)"
        return "idle in transaction"
    if state != "active":
        return "other"  # "fastpath function call", "disabled" (track_activities off; refused at start anyway)
    if wait_event_type is None:
        return "CPU"  # running, or waiting on something PostgreSQL does not instrument
    if wait_event_type == "Lock":
        return "Lock:advisory" if wait_event == "advisory" else "Lock:other"
    if wait_event_type == "LWLock":
        return "LWLock"
    if wait_event_type == "IO":
        return "IO:DataFileRead" if wait_event == "DataFileRead" else "IO:other"
    if wait_event_type == "Client" and wait_event == "ClientRead":
        return "Client:ClientRead"  # active and reading from the client: mid extended-protocol exchange
    return "other"  # Timeout:PgSleep, IPC, BufferPin, Client:ClientWrite, Extension, ...


class WaitSampler:
    """`with WaitSampler(dsn, application_name) as s:` samples until the block ends; `s.shares(start, end)` after
    (or during) gives a window's shares. Timestamps are epoch seconds (time.time()), as the run's windows are."""

    def __init__(self, dsn: str, application_name: str = SERVICE_APPLICATION_NAME, hz: float = 15.0) -> None:
        if hz <= 0:
            raise ValueError("hz must be positive")
        self.dsn = dsn
        self.application_name = application_name
        self.hz = hz
        self.not_measured: str | None = None  # sampling never started, and why
        self.ended: str | None = None  # sampling stopped by an error after it had started, and why
        self.ended_at: float | None = None
        self._times = array("d")
        self._counts = array("H")  # _WIDTH per instant, in WAIT_CATEGORIES order: 144k instants (2 h at 20 Hz) 2.6 MB
        self._present = array("H")  # per instant, the service's backends there at all (idle ones too)
        # the raw wait events behind the categories ("Lock:transactionid", "IO:WALSync"), per whole epoch second:
        # what "Lock:other" or "IO:other" was, at a 1-second resolution (a window's edges are rounded to seconds)
        self._events: dict[int, Counter[str]] = {}
        self._query_s = 0.0  # the samples' round trips, summed: what one sample costs, seen from here
        self._query_max_s = 0.0  # the longest: an instant's timestamp is within half of it of its snapshot
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # set: the sampler skips its instants (its connection stays open). Only for measuring what sampling costs
        # in one run, on and off in alternation (benchmarks/test_wait_sampler.py): a run never pauses it
        self.paused = threading.Event()
        self._started = threading.Event()  # set once the first instant is stored, or sampling gave up
        self._thread = threading.Thread(target=self._run, name="bookbench-waits", daemon=True)

    def __enter__(self) -> WaitSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        # one sample's timeout and a close: beyond that the thread is left to end on its own (daemon), as a sample
        # waiting on a stopped database would otherwise hold up the run
        self._thread.join(timeout=_QUERY_TIMEOUT_S + 2)

    def wait_started(self, timeout: float) -> bool:
        """Whether the first instant was stored (or sampling gave up: see not_measured) within `timeout`."""
        return self._started.wait(timeout) and self.not_measured is None

    @property
    def instants(self) -> int:
        with self._lock:
            return len(self._times)

    @property
    def query_ms_mean(self) -> float | None:
        """One sample's mean round trip (ms), or None before the first."""
        with self._lock:
            n = len(self._times)
            return 1000 * self._query_s / n if n else None

    @property
    def query_ms_max(self) -> float:
        """The slowest sample's round trip (ms): an instant's timestamp (the middle of its round trip) is within
        half of this of the moment pg_stat_activity was read."""
        with self._lock:
            return 1000 * self._query_max_s

    def shares(self, start: float, end: float) -> WaitShares | None:
        """The instants inside [start, end] (epoch s), or None when there is none (see not_measured / reason())."""
        with self._lock:
            i = bisect.bisect_left(self._times, start)
            j = bisect.bisect_right(self._times, end)
            if j <= i:
                return None
            first, last = self._times[i], self._times[j - 1]
            totals = [sum(self._counts[i * _WIDTH + c:j * _WIDTH:_WIDTH]) for c in range(_WIDTH)]
            present = sum(self._present[i:j])
            events: Counter[str] = Counter()
            lo, hi = int(start), int(end)
            for second, seen in self._events.items():  # a few thousand seconds at most; a window may span ages
                if lo <= second <= hi:
                    events.update(seen)
        if present == 0:
            return None  # no connection of the service at all: reason() says so, never "0 % of everything"
        instants = j - i
        observations = sum(totals)
        counts = dict(zip(WAIT_CATEGORIES, totals, strict=True))
        shares = {name: (n / observations if observations else 0.0) for name, n in counts.items()}
        achieved = (instants - 1) / (last - first) if instants > 1 and last > first else self.hz
        return WaitShares(hz=round(achieved, 2), instants=instants, observations=observations,
                          busy_backends_mean=observations / instants, counts=counts, shares=shares,
                          note=self.reason(start, end) or "", events=dict(events.most_common(12)))

    def reason(self, start: float, end: float) -> str | None:
        """Why the window [start, end] is not (fully) covered, in one line, or None when it is."""
        if self.not_measured is not None:
            return self.not_measured
        if self.ended is not None and self.ended_at is not None and self.ended_at < end:
            return f"sampling ended {max(0.0, self.ended_at - start):.1f} s into the window: {self.ended}"
        with self._lock:
            if not self._times or self._times[0] > start + 2 / self.hz:
                began = f"{self._times[0] - start:.1f} s into the window" if self._times else "never"
                return f"sampling began {began}"
            if self._stop.is_set() and self._times[-1] < end - 2 / self.hz:
                return f"sampling stopped {end - self._times[-1]:.1f} s before the window's end"
            i = bisect.bisect_left(self._times, start)
            j = bisect.bisect_right(self._times, end)
            if j <= i:
                # sampling ran on both sides of the window but fell on no instant inside it (a window shorter than
                # the sampling period, or a sampler held off the CPU): nothing is known of it, which is not "covered"
                return f"no sampling instant inside the window ({end - start:.2f} s at {self.hz:g} Hz)"
            if sum(self._present[i:j]) == 0:
                return (f"not measured: no connection named {self.application_name!r} in the run's database during "
                        f"the window ({j - i} sampling instants): the target's backends cannot be told apart from "
                        "others' (a service must set that application_name on its connections to be sampled)")
        return None

    # -- the sampling thread --------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            asyncio.run(self._sample())
        except Exception as exc:  # the run must never see the sampler fail, whatever went wrong
            self._give_up(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        finally:
            self._started.set()

    def _give_up(self, why: str) -> None:
        why = why.replace(self.dsn, mask_dsn(self.dsn))  # a driver's message may quote the DSN: never its password
        with self._lock:
            if self._times:
                self.ended, self.ended_at = why, time.time()
            else:
                self.not_measured = f"not measured: {why}"

    async def _sample(self) -> None:
        try:
            conn = await asyncpg.connect(self.dsn, timeout=_CONNECT_TIMEOUT_S,
                                         server_settings={"application_name": SAMPLER_APPLICATION_NAME})
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            self._give_up(f"the wait-event sampler could not connect to {mask_dsn(self.dsn)}: "
                          f"{type(exc).__name__}: {exc}")
            return
        try:
            await self._loop(conn)
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError,
                asyncpg.InternalClientError) as exc:
            what = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if conn.is_closed():  # the server ended it while the sampler slept: its next query only finds it gone
                self._give_up(f"the wait-event sampler's connection was closed by the server ({what})")
            else:
                self._give_up(f"the wait-event sampler's query failed: {what}")
        finally:
            try:
                await asyncio.wait_for(conn.close(), 2)
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                conn.terminate()

    async def _loop(self, conn: asyncpg.Connection) -> None:
        setup = await conn.fetchrow(_SETUP, timeout=_QUERY_TIMEOUT_S)
        assert setup is not None
        if not setup["tracking"]:
            self._give_up("track_activities is off on this server: pg_stat_activity shows no states")
            return
        statement = await conn.prepare(_SAMPLE)
        datid, app = setup["datid"], self.application_name
        period = 1.0 / self.hz
        due = time.monotonic()
        while not self._stop.is_set():
            if self.paused.is_set():
                await asyncio.sleep(period)
                due = time.monotonic()
                continue
            now = time.time()
            began = time.perf_counter()
            rows = await statement.fetch(datid, app, timeout=_QUERY_TIMEOUT_S)
            took = time.perf_counter() - began
            counts = [0] * _WIDTH
            raw: list[str] = []
            for row in rows:
                if row["hidden"]:
                    self._give_up(await self._hidden(conn, setup["me"]))
                    return
                category = classify(row["state"], row["wait_event_type"], row["wait_event"])
                if category is not None:
                    counts[_INDEX[category]] += 1
                    if row["wait_event_type"] is not None:
                        raw.append(f"{row['wait_event_type']}:{row['wait_event']}")
            instant = now + took / 2  # the middle of the round trip: the best guess of the instant
            with self._lock:
                self._times.append(instant)
                self._counts.extend(counts)
                self._present.append(min(len(rows), 65_535))
                if raw:
                    self._events.setdefault(int(instant), Counter()).update(raw)
                self._query_s += took
                self._query_max_s = max(self._query_max_s, took)
            self._started.set()
            # a fixed schedule; instants missed (a slow sample, a busy machine) are skipped, never made up in a burst
            due += period
            late = time.monotonic() - due
            if late > 0:
                due += period * (int(late / period) + 1)
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def _hidden(self, conn: asyncpg.Connection, me: str) -> str:
        roles: list[Any] = await conn.fetch(
            "SELECT DISTINCT usename FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()",
            self.application_name, timeout=_QUERY_TIMEOUT_S)
        names = ", ".join(sorted(str(r["usename"]) for r in roles)) or "another role"
        return (f"role {me} cannot see the wait events of the service's backends (role {names}): it needs "
                "pg_read_all_stats, superuser, or to be the service's own role")
