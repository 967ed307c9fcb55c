"""Every process a run starts, recorded in its folder, so that a run killed outright (SIGKILL, an OOM kill, a
closed laptop) leaves nothing running for long: the next command finds the folder, stops what is still there
and marks the manifest `killed`.

A record is (pid, start time, role). The start time is what makes it safe: a PID the system has since reused for
an unrelated process has another start time and is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from bookbench.artifacts import manifest as manifest_file
from bookbench.artifacts import pids as pids_file
from bookbench.artifacts.manifest import now_iso
from bookbench.artifacts.pids import PIDS_FILE as PIDS_FILE  # re-exported: tests name the file by it


@dataclass(frozen=True)
class Child:
    pid: int
    started: float  # psutil create_time
    role: str  # "service", "locust steady master", ...


def _started(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _children(data: dict[str, Any]) -> list[dict[str, Any]]:
    children = data.get("children")
    return [c for c in children if isinstance(c, dict)] if isinstance(children, list) else []


def claim(folder: Path) -> None:
    """This process owns the run folder."""
    pids_file.write(folder, {"owner": asdict(Child(os.getpid(), _started(os.getpid()) or 0.0, "bookbench")),
                    "children": []})


def record(folder: Path, pid: int, role: str) -> None:
    data = pids_file.read(folder)
    children = _children(data)
    started = _started(pid)
    if started is not None:
        children.append(asdict(Child(pid, started, role)))
        pids_file.write(folder, {**data, "children": children})


def _alive(child: dict[str, Any]) -> bool:
    pid, started = child.get("pid"), child.get("started")
    if not isinstance(pid, int) or not isinstance(started, float | int):
        return False
    now = _started(pid)
    # within a second: create_time is rounded differently on some systems
    return now is not None and abs(now - float(started)) < 1.0


def _stop(pid: int) -> None:
    """The process group first (uvicorn and Locust start their own, with children), then the process; each gets
    SIGTERM and then SIGCONT, so that a stopped leftover wakes to its TERM instead of waiting for the SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGCONT):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def reap(results_dir: Path, grace_s: float = 5.0) -> list[str]:
    """For every run folder under `results_dir` whose owner is gone while its manifest still says `running`:
    stop its recorded children that are still alive, mark it `killed`. Returns one line per folder handled."""
    handled: list[str] = []
    if not results_dir.is_dir():
        return handled
    for folder in pids_file.folders_with_record(results_dir):
        data = pids_file.read(folder)
        owner = data.get("owner")
        if not isinstance(owner, dict) or _alive(owner):
            continue
        try:
            man = manifest_file.read(folder)
        except Exception:  # an unreadable manifest is not this function's business
            continue
        if man.status != "running":
            continue
        alive = [c for c in _children(data) if _alive(c)]
        for child in alive:
            _stop(int(child["pid"]))
        deadline = time.monotonic() + grace_s
        for child in alive:
            while _alive(child) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(child):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(int(child["pid"]), signal.SIGKILL)
                    os.kill(int(child["pid"]), signal.SIGKILL)
        man.status, man.ended_at = "killed", man.ended_at or now_iso()
        man.reason = (f"bookbench (pid {owner.get('pid')}) was killed before the run ended; found by a later command, "
                      f"which stopped {len(alive)} leftover process(es)"
                      + (f": {', '.join(str(c['role']) for c in alive)}" if alive else ""))
        for entry in man.scenarios.values():
            if entry.status in ("running", "planned"):
                entry.status = "aborted" if entry.status == "running" else "not run"
                if entry.status == "aborted":
                    entry.aborted = "bookbench was killed during this scenario"
        manifest_file.write(folder, man)
        handled.append(f"{folder}: run killed earlier; stopped {len(alive)} leftover process(es), manifest marked "
                       "killed")
    return handled
