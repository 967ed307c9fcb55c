"""Shared fixtures: one embedded PostgreSQL per test session, databases per module, the service as a process."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest

from bookbench.config.dataset import DatasetParams
from bookbench.db.conn import run_with
from bookbench.db.embedded import EmbeddedPostgres
from bookbench.db.seed import seed
from bookbench.pipeline.stack import ServiceProcess
from tests.budget import budget, slowness

T = TypeVar("T")

SMALL = DatasetParams(orgs=3, providers_per_org=3, contacts=300, appointments=3000, seed=7)


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg"))
    server.start()
    yield server
    server.destroy()


@pytest.fixture(scope="session")
def new_db(pg: EmbeddedPostgres) -> Callable[[], str]:
    """Factory for a fresh, empty database in the session's cluster."""

    def make() -> str:
        return pg.create_database("t_" + uuid.uuid4().hex[:10])

    return make


def run_sql(dsn: str, work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    return run_with(dsn, work)


def seeded(dsn: str, params: DatasetParams = SMALL) -> str:
    run_with(dsn, lambda conn: seed(conn, params))
    return dsn


@pytest.fixture(scope="module")
def small_db(new_db: Callable[[], str]) -> str:
    return seeded(new_db())


@contextmanager
def running_service(dsn: str, log_dir: Path, env: dict[str, str] | None = None) -> Iterator[ServiceProcess]:
    """The service as a real process on `dsn` (its log in `log_dir`), stopped on the way out."""
    proc = ServiceProcess(dsn, log_path=log_dir / "service.log", extra_env=env)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def api(small_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with running_service(small_db, tmp_path_factory.mktemp("svc")) as proc:
        yield proc


@contextmanager
def service_on_own_cluster(tmp_path: Path, database: str) -> Iterator[tuple[EmbeddedPostgres, ServiceProcess]]:
    """A cluster of its own with a seeded database and the service on it: for tests that stop or restart the
    database, which the session's shared cluster must survive."""
    pg = EmbeddedPostgres(tmp_path / "pg")
    try:
        proc = ServiceProcess(seeded(pg.create_database(database)), log_path=tmp_path / "svc.log")
        proc.start()
        try:
            yield pg, proc
        finally:
            proc.stop()
    finally:
        pg.destroy()


def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    return run_with(dsn, lambda conn: conn.fetch(sql, *args))


def params_with(**changes: Any) -> DatasetParams:
    return dataclasses.replace(SMALL, **changes)


def run_async(coro: Awaitable[T]) -> T:
    async def _wrap() -> T:
        return await coro

    return asyncio.run(_wrap())


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path


# -- the hang guard -------------------------------------------------------------------------------------------------
def _file_durations(root: Path) -> dict[Path, float]:
    """tests/durations.txt: `seconds path` per line, `#` comments."""
    found = {}
    for line in (root / "tests" / "durations.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            seconds, path = line.split()
            found[root / path] = float(seconds)
    return found


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """pytest-timeout's bound (pyproject: 300 s, what the slowest test needs on an idle machine with room to spare)
    only catches hangs: stretched here by how busy the machine is, at least twice, so a slow machine is never
    mistaken for a hang (tests/budget.py). A test's own `timeout` marker is left as it is.

    Also the order: the longest files first, by their measured time (tests/durations.txt), then files holding
    `slow` tests. Under `-n N --dist loadfile` a file runs whole in one process, and a long one handed out last
    keeps the suite waiting on it alone; longest first balances the processes. (`make test` passes
    --no-loadscope-reorder: by default pytest-xdist re-sorts the files by their number of tests, which sent the long
    files of few tests last.)"""
    seconds = _file_durations(config.rootpath)
    slow_tests = Counter(item.path for item in items if item.get_closest_marker("slow"))
    # stable: each file keeps its own order
    items.sort(key=lambda item: (-seconds.get(item.path, 0.0), -slow_tests[item.path]))
    idle_s = float(config.getini("timeout") or 0)
    if not idle_s:
        return
    guard = pytest.mark.timeout(idle_s * max(2.0, slowness()))
    for item in items:
        if item.get_closest_marker("timeout") is None:
            item.add_marker(guard)


# -- tests that name a non-loopback address ------------------------------------------------------------------------
IN_NETNS = "BOOKBENCH_IN_NETNS"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """A test marked `netns` names a non-loopback address: its body runs again in a pytest of its own inside a
    network namespace with only loopback up (tests/netns.py), every connect() traced, so that a guard that fails
    has nowhere to send anything and the test still fails by what was tried. Name resolution (port 53) is the
    guard's own first step and is allowed to be attempted; it cannot leave the namespace either."""
    if pyfuncitem.get_closest_marker("netns") is None or os.environ.get(IN_NETNS):
        return None
    from tests.netns import run_isolated

    work = Path(tempfile.mkdtemp(prefix="bookbench-netns-"))
    try:
        run = run_isolated([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                            "--basetemp", str(work / "tmp"), pyfuncitem.nodeid], work,
                           env={**os.environ, IN_NETNS: "1"}, cwd=Path(__file__).resolve().parents[1],
                           timeout=budget(240))
        out = run.proc.stdout[-3000:] + run.proc.stderr[-2000:]
        assert run.proc.returncode == 0, f"inside the network namespace:\n{out}"
        assert "1 passed" in run.proc.stdout, out
        away = [(a, p) for a, p in run.connects if not (a.startswith("127.") or a == "::1") and p != 53]
        assert not away, f"tried to connect off loopback: {away[:5]}"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return True
