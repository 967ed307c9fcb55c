"""Hangs injected into real runs (tiny dataset): a part that stops answering while its process exists is named like
a death (exit 3, `fault`, the reason in manifest and report, no process left), within the hang bound; a stall that
recovers leaves the run going and every request it held up recorded."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from bookbench.config.scenarios import load_scenarios
from bookbench.db.embedded import free_port
from bookbench.load.live import LiveStats, Snapshot
from bookbench.pipeline.locust_proc import LOCUSTFILE, progress_line
from bookbench.pipeline.probes import END_GRACE_S, HANG_S, STARTUP_S, Probe, ProbeLog, Progress
from bookbench.pipeline.watchdog import exit_text
from tests.budget import budget
from tests.pipeline.test_faults import start_recording
from tests.pipeline.test_run import SECRET, _postgres_of
from tests.sample_rows import rows as read_rows

HANGS = Path(__file__).resolve().parents[1] / "data" / "scenarios_hangs.yaml"


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedded cluster for the file's runs, one after the other: created and seeded once (each run still
    starts and stops its server)."""
    return tmp_path_factory.mktemp("hangs") / "pg"


def _start(tmp: Path, pg: Path, scenario: str, *args: str) -> tuple[subprocess.Popen[str], Path]:
    """A run of `scenario`, returned once it records requests."""
    cmd = [sys.executable, "-m", "bookbench", "run", "--scenario-file", str(HANGS), "--out", str(tmp / "out"),
           "--data-dir", str(pg), "--key-secret", SECRET, "--skip-checks", "--no-notifications", "--scenarios",
           scenario, *args]
    return start_recording(cmd, tmp / "out", scenario)


def _child(proc: subprocess.Popen[str], *words: str) -> psutil.Process:
    found = [c for c in psutil.Process(proc.pid).children(recursive=True)
             if all(w in c.cmdline() for w in words)]
    assert len(found) == 1, [c.cmdline() for c in found]
    return found[0]


def _stopped_for_good(tmp: Path, pg: Path, *words: str) -> tuple[psutil.Process, float, Path, str, dict[str, Any],
                                                                    list[psutil.Process]]:
    """A run of `stuck` whose child named by `words` is SIGSTOPped once it records and never continued, so that the
    run must end it (exit 3): (that child, when it was stopped, run folder, output, manifest, the run's processes)."""
    proc, run_dir = _start(tmp, pg, "stuck")
    children = psutil.Process(proc.pid).children(recursive=True)
    victim = _child(proc, *words)
    stopped_at = time.time()
    victim.suspend()
    out, manifest = _finish(proc, run_dir, (3,))
    return victim, stopped_at, run_dir, out, manifest, children


def _postmaster(pg: Path) -> psutil.Process:
    return psutil.Process(int((pg / "data" / "postmaster.pid").read_text().split()[0]))


def _none_alive(procs: list[psutil.Process], pg: Path) -> None:
    time.sleep(0.5)
    alive = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], [p.cmdline() for p in alive]
    assert _postgres_of(pg) == []


def _finish(proc: subprocess.Popen[str], run_dir: Path, codes: tuple[int, ...]) -> tuple[str, dict]:  # type: ignore[type-arg]
    out, _ = proc.communicate(timeout=budget(180))
    assert proc.returncode in codes, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert out.strip().splitlines()[-1] == str(run_dir), out[-500:]
    assert (run_dir / "report.html").exists()
    return out, json.loads((run_dir / "manifest.json").read_text())


def _probe_log(run_dir: Path, scenario: str, part: str) -> list[tuple[float, float, str]]:
    """(epoch start, seconds taken, 'ok' or the problem) of each probe of `part`, from the run's watchdog log."""
    rows = []
    for line in (run_dir / "logs" / f"watchdog_{scenario}.log").read_text().splitlines():
        start, took, who, result = line.split(" ", 3)
        if who == part:
            rows.append((float(start), float(took), result))
    return rows


def _figure(pattern: str, text: str) -> float:
    found = re.search(pattern, text)
    assert found, text
    return float(found.group(1))


@pytest.mark.integration
@pytest.mark.slow
def test_a_service_a_postmaster_and_locust_stopped_for_seconds_delay_the_run_but_lose_nothing(
        tmp_path: Path, pg: Path) -> None:
    proc, run_dir = _start(tmp_path, pg, "recover")
    children = psutil.Process(proc.pid).children(recursive=True)
    service = _child(proc, "uvicorn")
    service_stop = time.time()
    service.suspend()  # SIGSTOP, shorter than the hang bound
    time.sleep(4)
    service.resume()
    time.sleep(2)
    postmaster = _postmaster(pg)
    pm_stop = time.time()
    postmaster.suspend()  # new connections wait; the service's pooled ones go on
    try:
        time.sleep(5)
    finally:
        postmaster.resume()
    pm_cont = time.time()
    time.sleep(1)
    locust = _child(proc, "locust", "--headless")
    locust.suspend()  # the load generator itself, shorter than the hang bound: no progress for 4 s, not a fault
    try:
        time.sleep(4)
    finally:
        locust.resume()
    _out, manifest = _finish(proc, run_dir, (0, 1))  # a completed run (GO or NO-GO: the stall is C's verdict)
    entry = manifest["scenarios"]["recover"]
    assert manifest["status"] == "completed", manifest["reason"]
    assert entry["status"] == "completed" and entry["fault"] is None and entry["aborted"] is None, entry
    # nothing vanished: every request Locust and the service counted is a sample
    counts = entry["counts"]
    assert counts["samples"] == counts["locust"] and counts["service"] in (None, counts["samples"]), counts
    # the requests the stop held up are samples, finished (late) after the SIGCONT
    rows = read_rows(run_dir, "recover")
    held = [r for r in rows if float(r["ts"]) < service_stop + 1
            and float(r["ts"]) + float(r["latency_ms"]) / 1000 > service_stop + 3]
    assert held, "no sample spans the 4 s stop of the service"
    # the database probe kept its own 2 s schedule through the stopped postmaster (a 2 s deadline per probe, no
    # 12 s gap behind the backlog sampler) and saw it: a probe during the stop timed out
    db = _probe_log(run_dir, "recover", "database")
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(db)]
    print(f"database probes: {len(db)}, largest gap between two {max(gaps):.2f} s")
    assert max(gaps) < budget(6.5), gaps
    assert any(pm_stop <= start <= pm_cont and result != "ok" for start, _, result in db), db
    assert any(start >= pm_cont and result == "ok" for start, _, result in db), db
    svc = _probe_log(run_dir, "recover", "service")
    assert any(service_stop <= start <= service_stop + 4 and result != "ok" for start, _, result in svc), svc
    _none_alive(children, pg)


@pytest.mark.integration
@pytest.mark.slow
def test_a_stopped_service_is_named_within_the_hang_bound(tmp_path: Path, pg: Path) -> None:
    service, stopped_at, run_dir, _out, manifest, children = _stopped_for_good(tmp_path, pg, "uvicorn")
    entry = manifest["scenarios"]["stuck"]
    assert entry["fault"] == "service", entry
    reason = entry["aborted"]
    assert "the service stopped answering" in reason and f"pid {service.pid}" in reason, reason
    # the product's own figure: silent for at least the bound, named well before the 45 s plan would have ended
    silent = _figure(r"no reply to /healthz for ([\d.]+) s", reason)
    assert HANG_S <= silent < budget(40), reason
    ended = _epoch(entry["ended_at"])
    print(f"service: silent {silent} s when named; scenario ended {ended - stopped_at:.1f} s after the SIGSTOP")
    assert ended - stopped_at < budget(60), (ended - stopped_at, reason)
    assert "the service stopped answering" in manifest["reason"]
    assert "the service stopped answering" in (run_dir / "report.html").read_text()
    # requests in flight to the stopped service timed out as failed samples, each with its error, not vanished
    rows = read_rows(run_dir, "stuck")
    timed_out = [r for r in rows if r["ok"] == "0" and float(r["ts"]) >= stopped_at - 1]
    assert timed_out and all(r["error"] for r in timed_out), rows[-5:]
    assert entry["counts"]["samples"] == entry["counts"]["locust"], entry["counts"]
    _none_alive(children, pg)


@pytest.mark.integration
@pytest.mark.slow
def test_a_stopped_locust_runner_is_a_load_generator_fault(tmp_path: Path, pg: Path) -> None:
    locust, stopped_at, run_dir, out, manifest, children = _stopped_for_good(tmp_path, pg, "locust", "--headless")
    entry = manifest["scenarios"]["stuck"]
    assert entry["fault"] == "load generator", entry
    reason = entry["aborted"]
    assert "load generator is stuck" in reason and f"pid {locust.pid}" in reason, reason
    still = _figure(r"wrote no progress while load was still planned for ([\d.]+) s", reason)
    assert HANG_S <= still < budget(40), reason
    ended = _epoch(entry["ended_at"]) - stopped_at
    print(f"Locust: no progress for {still} s when named; scenario ended {ended:.1f} s after the SIGSTOP")
    assert ended < budget(75), reason
    assert manifest["status"] == "failed" and "load generator" in manifest["reason"]
    assert "load generator is stuck" in (run_dir / "report.html").read_text()
    # the stall was said on the piped progress lines while it lasted
    assert re.search(r"no request completed for \d+ s", out), out[-2000:]
    _none_alive(children, pg)


@pytest.mark.integration
@pytest.mark.slow
def test_a_killed_master_is_a_load_generator_fault_and_its_workers_go_with_it(tmp_path: Path, pg: Path) -> None:
    proc, run_dir = _start(tmp_path, pg, "stuck", "--workers", "2")
    children = psutil.Process(proc.pid).children(recursive=True)
    master = _child(proc, "locust", "--master")
    workers = [c for c in children if "--worker" in c.cmdline()]
    assert len(workers) == 2
    master.kill()
    killed_at = time.monotonic()
    gone_after: dict[int, float] = {}
    give_up = budget(30)
    while len(gone_after) < 2 and time.monotonic() - killed_at < give_up:
        for w in workers:
            if w.pid not in gone_after and (not w.is_running() or w.status() == psutil.STATUS_ZOMBIE):
                gone_after[w.pid] = time.monotonic() - killed_at
        time.sleep(0.05)
    # no worker loads the service more than a few seconds after its master died
    assert len(gone_after) == 2 and max(gone_after.values()) < budget(10), gone_after
    print(f"workers gone {sorted(round(s, 2) for s in gone_after.values())} s after the master's kill -9")
    _out, manifest = _finish(proc, run_dir, (3,))
    entry = manifest["scenarios"]["stuck"]
    assert entry["fault"] == "load generator", entry
    reason = entry["aborted"]
    assert f"the Locust master (pid {master.pid}) was killed by SIGKILL" in reason, reason
    assert "the Locust master" in manifest["reason"]
    assert "was killed by SIGKILL" in (run_dir / "report.html").read_text()
    _none_alive(children, pg)


@pytest.mark.integration
@pytest.mark.slow
def test_a_local_worker_exits_when_its_master_process_is_gone(tmp_path: Path) -> None:
    """The worker-side half: without bookbench to kill it, a worker watching its master's pid exits by itself."""
    stand_in = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    spec = load_scenarios(HANGS)
    config = tmp_path / "config.json"  # what a worker of a run gets: the run's task mix and dataset
    config.write_text(json.dumps({"format_version": 1, "task_mix": spec.task_mix.model_dump(),
                                  "dataset": spec.dataset.model_dump(), "scenario": None}))
    env = {**os.environ, "BOOKBENCH_MASTER_PID": str(stand_in.pid), "BOOKBENCH_KEY_SECRET": SECRET,
           "BOOKBENCH_RUN_CONFIG": str(config)}
    # a master port nobody listens on: the worker keeps trying to connect while its watch runs
    log = tmp_path / "worker.log"
    with log.open("wb") as fh:
        worker = subprocess.Popen([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker",
                                   "--master-host", "127.0.0.1", "--master-port", str(free_port())], env=env,
                                  stdout=fh, stderr=subprocess.STDOUT)
    try:
        # Locust logs its start after importing the locustfile: the watch runs, the worker waits for its master
        deadline = time.monotonic() + budget(60)
        while "Starting Locust" not in log.read_text() and time.monotonic() < deadline:
            assert worker.poll() is None, log.read_text()[-2000:]
            time.sleep(0.1)
        time.sleep(1)
        assert worker.poll() is None, log.read_text()[-2000:]
        stand_in.kill()
        stand_in.wait(5)  # reaped: gone, not a zombie
        killed_at = time.monotonic()
        worker.wait(60)
        print(f"worker exited {time.monotonic() - killed_at:.2f} s after its master")
        out = log.read_text()
        assert worker.returncode == 3, out[-2000:]
        assert f"the Locust master (pid {stand_in.pid}) is gone" in out, out[-2000:]
    finally:
        for p in (worker, stand_in):
            if p.poll() is None:
                p.kill()
                p.wait(5)


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


@pytest.fixture(autouse=True)
def _no_leftovers() -> Iterator[None]:
    """A failing test must not leave its run for the next: continue anything of ours still stopped, then end the
    run (SIGTERM: it stops its children and its server itself)."""
    # only what this test started: the pytest worker may hold children of its own (multiprocessing's resource
    # tracker ignores SIGTERM, and waiting for it cost 90 s per test)
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if p.pid not in before and p.status() == psutil.STATUS_STOPPED:
                p.send_signal(signal.SIGCONT)
    for p in psutil.Process().children():
        if p.pid in before:
            continue
        with contextlib.suppress(psutil.Error):
            p.terminate()
            try:
                p.wait(90)
            except psutil.TimeoutExpired:
                p.kill()


def test_the_progress_line_says_a_stall_while_it_happens() -> None:
    snap = Snapshot(t=1000.0, elapsed_s=20, users=3, requests=500, failures=0, p95_ms=4.0, recent_p95_ms=None,
                    recent_rps=None, window_s=5, idle_s=4.2)
    assert "20/45 s · no request completed for 4 s · 3 users" in progress_line("stuck", 45, snap)
    # a snapshot that stopped coming (a stuck Locust) adds its age: nothing completes there either
    assert "no request completed for 11 s" in progress_line("stuck", 45, snap, now=1007.0)
    assert "no request completed" not in progress_line("stuck", 45, dataclasses.replace(snap, idle_s=2.9))
    # not once the plan is over (in-flight requests finishing), nor for an old snapshot without the figure
    assert "no request completed" not in progress_line("stuck", 15, snap, now=1007.0)
    assert "no request completed" not in progress_line("stuck", 45, dataclasses.replace(snap, idle_s=None))


def test_idle_time_is_since_the_last_completion_as_far_as_the_recorder_can_know() -> None:
    local = LiveStats()
    assert local.snapshot(now=100.0, users=3, elapsed_s=None).idle_s is None  # no load yet
    assert local.snapshot(now=104.0, users=3, elapsed_s=4.0).idle_s == pytest.approx(4.0)  # none completed
    local.add(100.0, 500.0, ok=True)  # ended at 100.5
    assert local.snapshot(now=107.5, users=3, elapsed_s=7.5).idle_s == pytest.approx(7.0)
    master = LiveStats(lag_s=4.0)  # workers' rows arrive up to 4 s late: only what is surely missing counts
    master.add(100.0, 500.0, ok=True)
    assert master.snapshot(now=102.0, users=3, elapsed_s=2.0).idle_s == 0.0
    assert master.snapshot(now=110.5, users=3, elapsed_s=10.5).idle_s == pytest.approx(6.0)


def test_a_probe_that_hangs_delays_no_other_probe(tmp_path: Path) -> None:
    """Each probe runs in its own thread on its own deadline: one stuck for seconds leaves the other's schedule."""
    path = tmp_path / "watchdog.log"
    log = ProbeLog(path)
    hung = threading.Event()

    def stuck() -> str | None:
        hung.wait(5)
        return "no answer"

    slow, quick = Probe("database", stuck, 0.2, log), Probe("service", lambda: None, 0.2, log)
    slow.start()
    quick.start()
    time.sleep(2.5)
    try:
        assert slow.silent_s() >= 2.4 and quick.silent_s() < 1.5
        starts = [float(line.split()[0]) for line in path.read_text().splitlines() if " service " in line]
        assert len(starts) >= 5 and max(b - a for a, b in itertools.pairwise(starts)) < 1.5, starts
    finally:
        slow.stop()
        quick.stop()
        hung.set()


def test_a_progress_file_that_stops_moving_has_a_deadline_for_each_phase() -> None:
    progress = Progress(planned_s=45)
    assert progress.deadline_s() == STARTUP_S  # Locust still importing: no snapshot yet
    snap = Snapshot(t=1.0, elapsed_s=None, users=0, requests=0, failures=0, p95_ms=None, recent_p95_ms=None,
                    recent_rps=None, window_s=0)
    progress.see(snap)
    assert progress.deadline_s() == HANG_S and progress.load_planned()  # waiting for workers, or running
    moved = progress.moved_at
    progress.see(dataclasses.replace(snap))  # the same snapshot again: not a move
    assert progress.moved_at == moved
    progress.see(dataclasses.replace(snap, t=2.0, elapsed_s=46.0))
    assert progress.moved_at > moved and not progress.load_planned() and progress.deadline_s() == END_GRACE_S


def test_an_exit_names_the_signal_that_killed() -> None:
    assert exit_text(-9) == "was killed by SIGKILL"
    assert exit_text(2) == "exited with code 2"
