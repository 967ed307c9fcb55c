"""A stale postmaster.pid must not wedge the embedded cluster. After a crash the file stays behind, naming a PID that
is dead, a zombie (where nothing reaps orphans), or reused by an unrelated process: status must say stopped and
name the stale PID, `db down` must signal nothing and not fail, and start must remove the file and start cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from bookbench.db.conn import run_with
from bookbench.db.embedded import EmbeddedPostgres
from bookbench.errors import DatabaseError
from tests.budget import budget

pytestmark = pytest.mark.integration

PID_FILE = "postmaster.pid"  # PostgreSQL's lock file: the PID on its first line, then the data folder, port...


def _wait(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def _gone(proc: psutil.Process) -> bool:
    # a zombie counts as gone: the server's processes are not our children, and nothing here may reap them
    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _cluster_processes(pg: EmbeddedPostgres) -> list[psutil.Process]:
    """The live processes of this cluster's server (the postmaster and its children run in the data folder)."""
    found = []
    for proc in psutil.process_iter(["name"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["name"] == "postgres" and Path(proc.cwd()) == pg.pgdata:
                found.append(proc)
    return found


def _kill_and_wait(procs: list[psutil.Process]) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    _wait(lambda: all(map(_gone, procs)))


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    pg = EmbeddedPostgres(tmp_path / "pg")
    yield pg
    with contextlib.suppress(DatabaseError):
        pg.stop()
    _kill_and_wait(_cluster_processes(pg))  # whatever a failed stop left running


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


def _crash(pg: EmbeddedPostgres) -> int:
    """Start the cluster and SIGKILL its postmaster, which leaves postmaster.pid behind; returns that PID."""
    state = pg.start()
    server = _cluster_processes(pg)
    os.kill(state.pid, signal.SIGKILL)
    _wait(lambda: all(map(_gone, server)))  # the backends exit when they notice their postmaster is gone
    assert (pg.pgdata / PID_FILE).exists()
    return state.pid


def _write_pid(pg: EmbeddedPostgres, pid: int) -> None:
    path = pg.pgdata / PID_FILE
    path.write_text("".join([f"{pid}\n", *path.read_text().splitlines(keepends=True)[1:]]))


def _cli(pg: EmbeddedPostgres, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "bookbench", "db", *args, "--data-dir", str(pg.data_dir)],
                          capture_output=True, text=True, timeout=budget(120))
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "Traceback" not in out
    return out


def _assert_recovers_from(pg: EmbeddedPostgres, stale: int) -> None:
    pid_file = pg.pgdata / PID_FILE
    stale_content = pid_file.read_text()
    assert pg.state() is None
    assert pg.stale_pid() == stale
    assert "embedded server: stopped" in _cli(pg, "status")
    assert "not running" in _cli(pg, "down")
    assert not pg.stop()
    # down may clean the stale file up; start must cope with one too
    pid_file.write_text(stale_content)
    state = pg.start()
    assert state.pid != stale
    assert pg.state() == state
    assert pg.stale_pid() is None
    assert run_with(state.dsn(), lambda conn: conn.fetchval("SELECT 1")) == 1


def test_pid_reused_by_an_unrelated_process(cluster: EmbeddedPostgres, sleeper: subprocess.Popen[bytes]) -> None:
    _crash(cluster)
    _write_pid(cluster, sleeper.pid)
    _assert_recovers_from(cluster, sleeper.pid)
    assert sleeper.poll() is None, "bookbench signalled the process that reused the postmaster's PID"


def test_pid_of_a_dead_process(cluster: EmbeddedPostgres) -> None:
    _crash(cluster)
    dead = subprocess.Popen(["true"])
    dead.wait()
    _write_pid(cluster, dead.pid)
    _assert_recovers_from(cluster, dead.pid)


def test_pid_of_the_killed_postmaster(cluster: EmbeddedPostgres) -> None:
    # the file as the crash left it: its PID is gone, or a zombie where nothing reaps orphans (as in containers)
    _assert_recovers_from(cluster, _crash(cluster))
