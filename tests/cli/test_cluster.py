"""One cluster, many commands: two commands share the embedded server and both complete; the last one out stops
it; a lease left by a killed command is dropped; `serve` stopped with SIGTERM leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

from bookbench.db.cluster import live_leases
from bookbench.db.embedded import EmbeddedPostgres, free_port
from tests.budget import budget

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "bookbench", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _wait(predicate, timeout: float = 90) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def test_two_commands_share_one_cluster_and_the_last_stops_it(tmp_path: Path) -> None:
    data, port = tmp_path / "pg", free_port()
    # the first command holds the cluster until told to stop (`serve`), so the second always ends first: a
    # second `check` as the first raced it (a warm, fast machine finished both within the same second)
    first = _start("serve", "--port", str(port), "--data-dir", str(data))
    try:
        _share(first, data)
    finally:  # a failed assertion must not leave the server running into the next test
        if first.poll() is None:
            first.kill()
            first.communicate()


def _share(first: subprocess.Popen[str], data: Path) -> None:
    _wait(lambda: bool(live_leases(data)) or first.poll() is not None)
    assert first.poll() is None, first.stdout.read() if first.stdout else ""
    second = _start("check", "smoke", "--data-dir", str(data))
    out2, _ = second.communicate(timeout=budget(180))
    assert second.returncode == 0, out2
    assert EmbeddedPostgres(data).state() is not None, "the second command stopped the server the first uses"
    assert first.poll() is None, "the first command ended while it should hold the cluster"
    first.send_signal(signal.SIGTERM)
    out1, _ = first.communicate(timeout=budget(60))
    assert first.returncode == 130, out1
    assert EmbeddedPostgres(data).state() is None, "the last command out must stop the server it started"
    assert live_leases(data) == []


def test_a_killed_commands_lease_is_dropped(tmp_path: Path) -> None:
    data = tmp_path / "pg"
    (data / "leases").mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (data / "leases" / f"{dead.pid}-0.lease").write_text(json.dumps({"pid": dead.pid, "started": 0.0}))
    # our own pid with a wrong start time: a reused pid is not the command that took the lease
    (data / "leases" / f"{os.getpid()}-1.lease").write_text(json.dumps({"pid": os.getpid(), "started": 1.0}))
    assert live_leases(data) == []
    assert not list((data / "leases").iterdir())


def test_serve_stops_everything_on_sigterm(tmp_path: Path) -> None:
    data, port = tmp_path / "pg", free_port()
    proc = _start("serve", "--port", str(port), "--data-dir", str(data))

    def ready() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            return False

    _wait(ready)

    def stack_up() -> bool:  # the dispatcher and both fake providers start right after the service
        cmds = [" ".join(c.cmdline()) for c in psutil.Process(proc.pid).children(recursive=True)]
        return sum("bookbench.fakes" in c for c in cmds) == 2 and any("target_service.notify" in c for c in cmds)

    _wait(stack_up)
    children = psutil.Process(proc.pid).children(recursive=True)
    postmaster = EmbeddedPostgres(data).state()
    assert children and postmaster is not None
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=budget(60))
    assert proc.returncode == 130, out
    assert "Traceback" not in out
    _gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, [p.pid for p in alive]
    assert not psutil.pid_exists(postmaster.pid) or psutil.Process(postmaster.pid).status() == "zombie"
    assert EmbeddedPostgres(data).state() is None
