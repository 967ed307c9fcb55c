"""What the service's own per-request timing (GET /stats/timing, issue 27 item 2) costs on its hot path; the issue
allows at most 1 %.

Two services on one seeded database, timing on (A) and off (B: BOOKBENCH_TIMING_RING_SIZE=0), driven in turn with
the same fixed number of upcoming-appointment lookups (the cheapest endpoint, where a fixed per-request cost shows
most) in interleaved A B B A blocks, so that this machine's drift from minute to minute falls on both alike. Printed:
requests/s of each run, the on/off ratio (the goal), the service's CPU time per request on and off (from /proc:
steadier than throughput on a shared machine), and the added work alone timed in a loop against that CPU time.

Run: python -m benchmarks.test_service_timing   (or pytest -s benchmarks/test_service_timing.py)
Environment: BOOKBENCH_BENCH_TIMING_REQUESTS (per run, default 5000), BOOKBENCH_BENCH_TIMING_BLOCKS (default 10).
Short runs, many blocks: on the 2-core box throughput drifts by 5-10 % from one 10 s run to the next, so a block of
four long runs holds that drift; short ones hold less of it, and the spread of the blocks' ratios shows what is left.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import statistics
import tempfile
import time
import timeit
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from scipy import stats

from benchmarks.goals import goal
from bookbench.config.dataset import DatasetParams, api_key
from bookbench.db import indexes
from bookbench.db.conn import run_with
from bookbench.db.embedded import EmbeddedPostgres
from bookbench.db.seed import seed
from bookbench.pipeline.stack import ServiceProcess
from target_service.timing import CURRENT, RequestTiming, TimingRing

pytestmark = [pytest.mark.bench, pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(1800)]

PARAMS = DatasetParams(orgs=5, providers_per_org=5, contacts=5_000, appointments=50_000, seed=5)
REQUESTS = int(os.environ.get("BOOKBENCH_BENCH_TIMING_REQUESTS", "5000"))
BLOCKS = int(os.environ.get("BOOKBENCH_BENCH_TIMING_BLOCKS", "10"))
CONNECTIONS = 16  # keep-alive connections; under the pool's 20, so that no request waits for a connection
WARMUP = 2000
# A-A control: BOOKBENCH_BENCH_TIMING_CONTROL=1 starts the "on" side with timing off too; what it measures is the
# difference between two like services on this machine, the floor under any difference the timing makes
CONTROL = os.environ.get("BOOKBENCH_BENCH_TIMING_CONTROL", "") not in ("", "0")
GOAL_RATIO = 0.99  # issue 27: the timing may cost at most 1 % of throughput


@dataclass
class Side:
    name: str
    service: ServiceProcess
    rps: list[float]
    cpu_us: list[float]  # the service process's CPU time per request


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat, fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _requests() -> list[bytes]:
    """Lookups spread over every org's contacts, each with its org's key (cached by the service after the first)."""
    out = []
    for org in range(1, PARAMS.orgs + 1):
        for contact in PARAMS.contacts_of(org)[:50]:
            out.append((f"GET /api/v1/contacts/{contact}/appointments/upcoming HTTP/1.1\r\nhost: 127.0.0.1\r\n"
                        f"authorization: Bearer {api_key(org)}\r\n\r\n").encode())
    return out


async def _drive(port: int, n: int) -> float:
    """Send `n` requests over CONNECTIONS keep-alive connections, one in flight on each; requests per second.
    A bare asyncio client: a few tens of microseconds a request, far below the service's, which sets the pace."""
    requests = _requests()
    issued = itertools.count()
    failures: list[bytes] = []

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (i := next(issued)) < n:
                writer.write(requests[i % len(requests)])
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
                if not head.startswith(b"HTTP/1.1 200"):
                    failures.append(head[:40])
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))
    elapsed = time.perf_counter() - started
    assert not failures, f"{len(failures)} requests failed, e.g. {failures[0]!r}"
    return n / elapsed


def _run(side: Side, n: int, keep: bool = True) -> None:
    assert side.service.proc is not None
    pid = side.service.proc.pid
    cpu = _cpu_s(pid)
    rps = asyncio.run(_drive(side.service.port, n))
    if keep:
        side.rps.append(rps)
        side.cpu_us.append(1e6 * (_cpu_s(pid) - cpu) / n)


def _interval(ratios: list[float]) -> tuple[float, float]:
    """A 95 % interval of the mean block ratio (Student's t; the blocks are independent repeats)."""
    if len(ratios) < 2:
        return ratios[0], ratios[0]
    half = stats.t.ppf(0.975, len(ratios) - 1) * statistics.stdev(ratios) / len(ratios) ** 0.5
    return statistics.fmean(ratios) - half, statistics.fmean(ratios) + half


def added_work_us(loops: int = 200_000) -> float:
    """Microseconds of what the timing adds to one request (one connection taken), timed alone: the context
    variable, five clock reads, the ring's four stores."""
    ring = TimingRing(1000)
    clock, wall = time.perf_counter, time.time

    def one() -> None:
        entered = clock()
        timing = RequestTiming()
        CURRENT.set(timing)
        current = CURRENT.get()  # db.acquired()
        asked = clock()
        got = clock()
        if current is not None:
            current.pool_wait_s += got - asked
            current.held_s += clock() - got
        ring.record(wall(), clock() - entered, timing)

    return 1e6 * min(timeit.repeat(one, number=loops, repeat=5)) / loops


@contextmanager
def pairs(work: Path) -> Iterator[list[tuple[Side, Side]]]:
    """Two (on, off) pairs of services on one database, started on, off, off, on: an A-A control showed two like
    services differing by 4-5 % in requests/s here, the first started the slower, so the blocks alternate between
    pairs whose start order is reversed."""
    with ExitStack() as stack:
        pg = EmbeddedPostgres(work / "pg")
        stack.callback(pg.destroy)
        dsn = pg.create_database("timing_bench")
        run_with(dsn, lambda conn: seed(conn, PARAMS))
        run_with(dsn, lambda conn: indexes.apply(conn, "recommended"))

        def start(name: str, ring: str) -> Side:
            svc = ServiceProcess(dsn, log_path=work / f"{name.replace(' ', '_')}.log",
                                 extra_env={"BOOKBENCH_TIMING_RING_SIZE": ring})
            svc.start()
            stack.callback(svc.stop)
            return Side(name, svc, [], [])

        on_ring = "0" if CONTROL else "200000"
        on1, off1 = start("timing on 1", on_ring), start("timing off 1", "0")
        off2, on2 = start("timing off 2", "0"), start("timing on 2", on_ring)
        yield [(on1, off1), (on2, off2)]


def measure(work: Path) -> float:
    with pairs(work) as both:
        sides = [side for pair in both for side in pair]
        for side in sides:
            _run(side, WARMUP, keep=False)  # keys cached, pool grown to the connections, code paths warm
        blocks: list[float] = []
        for b in range(BLOCKS):
            on, off = both[b % 2]
            for side in (on, off, off, on):
                _run(side, REQUESTS)
            # the block's two on-runs against its two off-runs
            blocks.append(sum(on.rps[-2:]) / sum(off.rps[-2:]))
        for side in sides:
            print(f"{side.name:12s}: req/s {[round(r) for r in side.rps]}, service CPU us/request "
                  f"{[round(c) for c in side.cpu_us]}")
        on_cpu = [c for on, _ in both for c in on.cpu_us]
        off_cpu = [c for _, off in both for c in off.cpu_us]
        on_rps = [r for on, _ in both for r in on.rps]
        off_rps = [r for _, off in both for r in off.rps]
        ratio = statistics.fmean(blocks)
        cpu_ratio = statistics.fmean(on_cpu) / statistics.fmean(off_cpu)
        added = added_work_us()
        print(f"req/s on/off per A-B-B-A block: {[round(b, 4) for b in blocks]} ({REQUESTS} requests a run"
              f"{'; A-A CONTROL: both sides have timing off' if CONTROL else ''})")
        low, high = _interval(blocks)
        pooled = statistics.fmean(on_rps) / statistics.fmean(off_rps)
        print(f"req/s on/off: mean of blocks {ratio:.4f} (95 % interval {low:.4f} - {high:.4f}), median of blocks "
              f"{statistics.median(blocks):.4f}, all runs pooled {pooled:.4f}")
        print(f"service CPU per request on/off (means): {cpu_ratio:.4f}")
        print(f"the added work alone: {added:.2f} us a request = "
              f"{100 * added / statistics.median(off_cpu):.2f} % of the service's CPU per request")
        # the measure; on a shared 2-core box its interval is wider than the 1 % it judges, so the service's
        # CPU per request (the cost itself, less swayed by the drift) is judged beside it
        goal("requests/s with timing on / off (mean of A-B-B-A blocks)", ratio, ">=", GOAL_RATIO)
        goal("service CPU per request with timing on / off", cpu_ratio, "<=", 1 / GOAL_RATIO)
        return ratio


def test_timing_costs_under_one_percent(tmp_path: Path) -> None:
    assert measure(tmp_path) > 0


if __name__ == "__main__":
    with tempfile.TemporaryDirectory(prefix="bookbench-timing-bench-") as tmp:
        measure(Path(tmp))
