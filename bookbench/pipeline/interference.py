"""What else the machine did while a scenario ran, and how busy the load generator itself was (issue 23, items 3
and 4): sampled once a second in a background thread, stored in the manifest per scenario.

Outsiders' CPU is measured by subtraction, so that short-lived processes of others (a test suite's, a cron job's)
are counted too: the machine's user+nice+system time minus the CPU of the run's own process tree (bookbench, its
children and theirs: service, Locust, dispatchers, fake providers; the PostgreSQL postmaster serving the run and
its processes, except backends connected to another database). Steal, irq and softirq are left out of both sides:
loopback traffic's softirq time is the run's own but no process carries it. An own process that exits is still
counted: its parent (tracked) has reaped it, so the parent's children times hold its last second.
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

SAMPLE_EVERY_S = 1.0
PRESSURE = Path("/proc/pressure")
# a backend's process title: "postgres: <user> <database> <host>(<port>) <activity>"; autovacuum names its database
_BACKEND = re.compile(r"^postgres: (?:\S+ (?P<db>\S+) \S*\(\d+\)|autovacuum worker (?P<av>\S+))")
Key = tuple[int, float]  # (pid, create time): a pid reused by another process is another key


def backend_database(title: str) -> str | None:
    """The database a PostgreSQL process serves, read from its process title; None for the server's own
    processes (checkpointer, walwriter, ...), which work for every database."""
    found = _BACKEND.match(title)
    return None if found is None else found.group("db") or found.group("av")


def own_tree(ppids: dict[int, int], roots: Iterable[int], postmaster: int | None = None,
             foreign: Callable[[int], bool] = lambda pid: False) -> set[int]:
    """The pids of the run's process tree: `roots` and their descendants, the postmaster and its descendants,
    without the postmaster's children for which `foreign(pid)` says they serve another database."""
    children: dict[int, list[int]] = {}
    for pid, parent in ppids.items():
        children.setdefault(parent, []).append(pid)
    out: set[int] = set()
    stack = [r for r in (*roots, *([postmaster] if postmaster else [])) if r in ppids]
    while stack:
        pid = stack.pop()
        if pid in out:
            continue
        out.add(pid)
        stack.extend(c for c in children.get(pid, []) if not (pid == postmaster and foreign(c)))
    return out


@dataclass
class Accounts:
    """CPU seconds of a set of processes between two snapshots, crediting processes born and reaped in between."""

    prev: dict[Key, float] = field(default_factory=dict)
    prev_parent: dict[Key, int] = field(default_factory=dict)
    prev_t: float | None = None

    def step(self, t: float, totals: dict[Key, float], parents: dict[Key, int]) -> float | None:
        """`totals`: each process's user+system time including its reaped children's; `parents`: its ppid.
        Returns the CPU seconds used since the last step (None on the first)."""
        used = 0.0
        if self.prev_t is not None:
            for key, total in totals.items():
                if key in self.prev:
                    used += total - self.prev[key]
                elif _born_after(key, self.prev_t):
                    used += total  # started since the last step: all of it is new
            live = {pid for pid, _ in totals}
            for key, total in self.prev.items():
                # gone, reaped by a parent we track: its final total is in the parent's children times now, of
                # which `total` was already counted
                if key not in totals and self.prev_parent.get(key) in live:
                    used -= total
        first = self.prev_t is None
        self.prev, self.prev_parent, self.prev_t = totals, parents, t
        return None if first else max(used, 0.0)


def _born_after(key: Key, t: float) -> bool:
    return key[1] > t


@dataclass(frozen=True)
class Tick:
    """One sample: the seconds since the last one and what happened in them."""

    t: float
    wall: float  # seconds since the previous sample
    outside_cores: float  # CPU-seconds of outsiders per second
    own_cores: float  # CPU-seconds of the run's own tree per second
    steal_cores: float
    load1: float
    available_mb: float
    mem_pressure: float | None  # /proc/pressure/memory "some avg10" (% of time some task waited for memory)
    cpu_pressure: float | None  # /proc/pressure/cpu "some avg10"
    generator: dict[str, float]  # label -> share of one core


def pressure(kind: str, root: Path = PRESSURE) -> float | None:
    """`some avg10` of /proc/pressure/<kind>; None where the kernel has no PSI."""
    try:
        line = (root / kind).read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    found = re.search(r"avg10=([0-9.]+)", line)
    return float(found.group(1)) if found else None


def summarize(ticks: list[Tick], cpus: int, every_s: float = SAMPLE_EVERY_S) -> dict[str, Any] | None:
    """The per-scenario figures stored as ScenarioEntry.interference; None without one full interval."""
    if not ticks:
        return None
    outside = [k.outside_cores for k in ticks]
    loads = [k.load1 for k in ticks]
    mem = [k.mem_pressure for k in ticks if k.mem_pressure is not None]
    cpu = [k.cpu_pressure for k in ticks if k.cpu_pressure is not None]
    mean_out = statistics.fmean(outside)
    return {
        "samples": len(ticks), "interval_s": every_s, "cpus": cpus,
        "outside_cores": round(mean_out, 4), "outside_cores_max": round(max(outside), 4),
        "outside_cpu_share": round(mean_out / cpus, 4),
        "outside_cpu_s": round(sum(k.outside_cores * k.wall for k in ticks), 3),
        "own_cpu_s": round(sum(k.own_cores * k.wall for k in ticks), 3),
        # the run's own tree, for scale (and to check the attribution): bookbench, service, Locust, database
        "own_cores": round(statistics.fmean(k.own_cores for k in ticks), 4),
        "steal_share": round(statistics.fmean(k.steal_cores for k in ticks) / cpus, 4),
        "load_avg_mean": round(statistics.fmean(loads), 2), "load_avg_max": round(max(loads), 2),
        "mem_pressure_avg10_max": max(mem) if mem else None, "cpu_pressure_avg10_max": max(cpu) if cpu else None,
        "available_mb_min": round(min(k.available_mb for k in ticks)),
        # per second: [epoch, outsiders' cores, steal cores, load average]
        "series": [[round(k.t, 3), round(k.outside_cores, 3), round(k.steal_cores, 3), round(k.load1, 2)]
                   for k in ticks],
    }


def generator_series(ticks: list[Tick], every_s: float = SAMPLE_EVERY_S) -> dict[str, Any] | None:
    """ScenarioEntry.generator_cpu: each Locust process's share of one core per second, [epoch, share]."""
    labels = sorted({label for k in ticks for label in k.generator})
    if not labels:
        return None
    return {"interval_s": every_s,
            "processes": {label: [[round(k.t, 3), round(k.generator[label], 3)] for k in ticks
                                  if label in k.generator] for label in labels}}


def _cpu_total(proc: psutil.Process) -> float:
    c = proc.cpu_times()
    return float(c.user + c.system + c.children_user + c.children_system)


class Sampler:
    """A background thread sampling once a second between start() and stop(); never fails the run (a tick that
    cannot be read is skipped)."""

    def __init__(self, roots: list[int], postmaster: int | None = None, database: str | None = None,
                 generator: Callable[[], dict[str, int]] = dict, every_s: float = SAMPLE_EVERY_S) -> None:
        self.roots, self.postmaster, self.database = roots, postmaster, database
        self.generator, self.every_s = generator, every_s
        self.ticks: list[Tick] = []
        self.cpus = psutil.cpu_count() or 1
        self._own = Accounts()
        self._gen: dict[str, tuple[Key, float, float]] = {}  # label -> (process, cpu total, when)
        self._machine: tuple[float, float, float] | None = None  # (when, busy s, steal s)
        self._titles: dict[Key, str | None] = {}  # a backend's database does not change: read its title once
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="bookbench-interference", daemon=True)

    def start(self) -> Sampler:
        self.tick()  # the baseline
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def interference(self) -> dict[str, Any] | None:
        return summarize(self.ticks, self.cpus, self.every_s)

    def generator_cpu(self) -> dict[str, Any] | None:
        return generator_series(self.ticks, self.every_s)

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            self.tick()

    def tick(self) -> None:
        with contextlib.suppress(psutil.Error, OSError):
            self._tick()

    def _foreign(self, procs: dict[int, psutil.Process]) -> Callable[[int], bool]:
        def foreign(pid: int) -> bool:
            if self.database is None:
                return False
            proc = procs[pid]
            try:
                key = (pid, proc.create_time())
                if key not in self._titles:
                    self._titles[key] = backend_database(" ".join(proc.cmdline()))
            except psutil.Error:
                return False  # gone, or not ours to read: counted as the server's
            db = self._titles[key]
            return db is not None and db != self.database
        return foreign

    def _tick(self) -> None:
        t = time.time()
        procs = {p.pid: p for p in psutil.process_iter(["ppid"])}
        ppids = {pid: int(p.info["ppid"] or 0) for pid, p in procs.items()}
        mine = own_tree(ppids, self.roots, self.postmaster, self._foreign(procs))
        totals: dict[Key, float] = {}
        parents: dict[Key, int] = {}
        for pid in mine:
            with contextlib.suppress(psutil.Error):
                key = (pid, procs[pid].create_time())
                totals[key], parents[key] = _cpu_total(procs[pid]), ppids[pid]
        own = self._own.step(t, totals, parents)
        cpu = psutil.cpu_times()
        busy, steal = float(cpu.user + cpu.nice + cpu.system), float(getattr(cpu, "steal", 0.0))
        gen = self._generator(t)
        prev, self._machine = self._machine, (t, busy, steal)
        if prev is None or own is None or t - prev[0] <= 0:
            return
        wall = t - prev[0]
        self.ticks.append(Tick(
            t=t, wall=wall, outside_cores=max(busy - prev[1] - own, 0.0) / wall, own_cores=own / wall,
            steal_cores=max(steal - prev[2], 0.0) / wall,
            load1=os.getloadavg()[0], available_mb=psutil.virtual_memory().available / 2**20,
            mem_pressure=pressure("memory"), cpu_pressure=pressure("cpu"), generator=gen))

    def _generator(self, t: float) -> dict[str, float]:
        shares: dict[str, float] = {}
        for label, pid in self.generator().items():
            try:
                proc = psutil.Process(pid)
                key, total = (pid, proc.create_time()), float(sum(proc.cpu_times()[:2]))
            except psutil.Error:
                continue  # ended: its last interval is not known
            before = self._gen.get(label)
            if before is not None and before[0] == key and t > before[2]:
                shares[label] = max(total - before[1], 0.0) / (t - before[2])
            self._gen[label] = (key, total, t)
        return shares


def listener_pids(port: int) -> list[int]:
    """The processes listening on a local TCP port (the database or the service a run measures); none when the
    system does not say (another user's sockets, a platform without the call)."""
    try:
        conns = psutil.net_connections("tcp")
    except (psutil.Error, OSError):
        return []
    return sorted({c.pid for c in conns if c.pid and c.status == psutil.CONN_LISTEN and c.laddr
                   and c.laddr.port == port})


def local_port(url: str | None) -> int | None:
    """The port of a URL or DSN on this machine (loopback), else None."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    try:
        return parts.port or (5432 if parts.scheme.startswith("postgres") else 80)
    except ValueError:
        return None


def database_name(dsn: str | None) -> str | None:
    """The database a DSN names (its path), or None."""
    if not dsn:
        return None
    return urlsplit(dsn).path.lstrip("/") or None


# -- for pipeline/run.py ---------------------------------------------------------------------------------------
def for_scenario(dsn: str | None, target_url: str | None, own_database: bool, data_dir: Path | None,
                 locust: Callable[[], list[int]]) -> Sampler:
    """The sampler for one scenario. The run's own tree: this process and its descendants; the database server
    that listens on the DSN's port when it runs here (bookbench's embedded one, or a local --dsn: its work is the
    run's); a --target-url service listening here. `locust` gives the Locust pids once they are started."""
    roots = [os.getpid()]
    port = local_port(target_url)
    if port is not None:
        roots += listener_pids(port)
    db_port = local_port(dsn)
    postmasters = listener_pids(db_port) if db_port is not None else []
    postmaster = postmasters[0] if postmasters else None
    if postmaster is None and own_database:
        from bookbench.db.embedded import EmbeddedPostgres

        postmaster = EmbeddedPostgres(data_dir).postmaster_pid()

    def generator() -> dict[str, int]:
        pids = locust()
        if len(pids) == 1:
            return {"locust": pids[0]}
        return {("master" if i == 0 else f"worker {i}"): pid for i, pid in enumerate(pids)}

    return Sampler(roots, postmaster, database_name(dsn), generator)


def machine_line(name: str, interference: dict[str, Any] | None, generator_cpu: dict[str, Any] | None) -> str:
    """One terminal line after a scenario: what else ran on the machine, and the busiest Locust process."""
    if not interference:
        return f"  {name} machine: not sampled (the scenario ended within a second)"
    i = interference
    text = (f"  {name} machine: other processes used {i['outside_cores']:.2f} of {i['cpus']} cores "
            f"(peak {i['outside_cores_max']:.2f}) · steal {100 * i['steal_share']:.1f} % · load average "
            f"{i['load_avg_mean']:.1f} (max {i['load_avg_max']:.1f})")
    if i.get("mem_pressure_avg10_max"):
        text += f" · memory pressure {i['mem_pressure_avg10_max']:.1f} %"
    busiest = max(((label, max(s for _, s in series)) for label, series in
                   (generator_cpu or {}).get("processes", {}).items() if series), key=lambda x: x[1], default=None)
    if busiest is not None:
        # a local runner's label is "locust" itself: "Locust at most ...", not "Locust locust at most ..."
        who = "Locust" if busiest[0] == "locust" else f"Locust {busiest[0]}"
        text += f" · {who} at most {100 * busiest[1]:.0f} % of a core"
    return text
