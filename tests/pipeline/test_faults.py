"""Faults injected into real runs (tiny dataset): each ends with the documented exit code, a report, a named
reason in the manifest, and no process left behind."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.budget import budget
from tests.pipeline.test_run import SECRET, TINY, _postgres_of
from tests.sample_rows import recording
from tests.sample_rows import rows as read_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _start(tmp: Path, *args: str, notifications: bool = False,
           scenario_file: Path = TINY) -> tuple[subprocess.Popen[str], Path]:
    """A run of the 60 s scenario `long`, returned once it records requests. Path B (a dispatcher, two fake
    providers: ~2 s of CPU per run) only where the test is about the processes it adds."""
    cmd = [sys.executable, "-m", "bookbench", "run", "--scenario-file", str(scenario_file), "--out", str(tmp / "out"),
           "--data-dir", str(tmp / "pg"), "--key-secret", SECRET, "--skip-checks",
           *([] if notifications else ["--no-notifications"]), *args]
    return start_recording(cmd, tmp / "out", "long")


def start_recording(cmd: list[str], out: Path, scenario: str) -> tuple[subprocess.Popen[str], Path]:
    """Start a `bookbench run` command line; return it and its run folder once `scenario` records requests."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + budget(120)
    while time.monotonic() < deadline:
        found = recording(out, scenario)
        if found:
            return proc, found[0]
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"the run never started recording: {proc.communicate(timeout=budget(30))[0][-2000:]}")


def _descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def _none_alive(procs: list[psutil.Process], tmp: Path) -> None:
    time.sleep(0.5)
    alive = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert alive == [], [p.cmdline() for p in alive]
    assert _postgres_of(tmp / "pg") == []


def _finish(proc: subprocess.Popen[str], run_dir: Path, code: int) -> tuple[str, dict]:  # type: ignore[type-arg]
    out, _ = proc.communicate(timeout=budget(120))
    assert proc.returncode == code, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert out.strip().splitlines()[-1] == str(run_dir), out[-500:]
    assert (run_dir / "report.html").exists()
    return out, json.loads((run_dir / "manifest.json").read_text())


def test_sigterm_then_an_impatient_ctrl_c_still_checks_and_reports(tmp_path: Path) -> None:
    proc, run_dir = _start(tmp_path, "--scenarios", "long,steady", notifications=True)  # and Path B's processes
    children = _descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)  # the second signal, 0.3 s later
    out, manifest = _finish(proc, run_dir, 130)
    assert manifest["status"] == "interrupted" and manifest["reason"] == "stopped by SIGTERM", manifest["reason"]
    long = manifest["scenarios"]["long"]
    # every sample measured is kept, Locust's own files are written, and the integrity steps ran
    assert long["counts"]["samples"] > 0
    assert long["counts"]["samples"] == len(read_rows(run_dir, "long"))
    assert (run_dir / "locust" / "long.json").exists()
    assert long["audit"] is not None and long["reconciliation"] is not None
    assert long["integrity_skipped"] is None
    assert manifest["scenarios"]["steady"]["status"] == "not run"
    assert "already stopping" in out
    assert "decision: GO" not in out and "decision: " in out  # interrupted: never GO
    _none_alive(children, tmp_path)


def test_a_dead_database_ends_the_scenario_with_a_named_reason(tmp_path: Path) -> None:
    proc, run_dir = _start(tmp_path, "--scenarios", "long,steady")
    children = _descendants(proc.pid)
    postmaster = int((tmp_path / "pg" / "data" / "postmaster.pid").read_text().split()[0])
    killed_at = time.monotonic()
    psutil.Process(postmaster).kill()
    out, manifest = _finish(proc, run_dir, 3)
    # detected by the watchdog within seconds, not after the 60 s scenario ran on fast 503s
    assert time.monotonic() - killed_at < budget(40)
    long = manifest["scenarios"]["long"]
    assert long["fault"] == "database" and "database stopped answering" in long["aborted"], long["aborted"]
    # a killed server refuses connections: named on the refusals, not after the hang bound a stopped one gets
    assert "refused" in long["aborted"].lower(), long["aborted"]
    print(f"database killed: the run ended {time.monotonic() - killed_at:.1f} s after the kill: {long['aborted']}")
    assert "database stopped answering" in manifest["reason"]
    assert long["integrity_skipped"] == "the database stopped answering"
    assert manifest["scenarios"]["steady"]["status"] == "not run"
    assert "decision: NO-GO" in out
    _none_alive(children, tmp_path)


def test_a_dead_locust_worker_is_a_load_generator_fault(tmp_path: Path) -> None:
    proc, run_dir = _start(tmp_path, "--scenarios", "long", "--workers", "2")
    children = _descendants(proc.pid)
    workers = [c for c in children if "--worker" in c.cmdline()]
    assert len(workers) == 2
    workers[1].kill()
    _out, manifest = _finish(proc, run_dir, 3)
    long = manifest["scenarios"]["long"]
    assert long["fault"] == "load generator" and "Locust worker" in long["aborted"], long
    assert "load generator fault" in manifest["reason"]
    assert manifest["status"] == "failed"
    _none_alive(children, tmp_path)


def test_a_killed_run_is_found_cleaned_and_marked_by_the_next(tmp_path: Path) -> None:
    proc, run_dir = _start(tmp_path, "--scenarios", "long", notifications=True)  # dispatchers and fakes orphaned too
    children = _descendants(proc.pid)
    assert any("uvicorn" in " ".join(c.cmdline()) for c in children)
    proc.kill()  # SIGKILL: no clean-up of any kind
    proc.communicate(timeout=10)
    assert json.loads((run_dir / "manifest.json").read_text())["status"] == "running"
    assert any(c.is_running() for c in children)  # the orphans
    nxt = subprocess.run(
        [sys.executable, "-m", "bookbench", "run", "--scenario-file", str(TINY), "--out", str(tmp_path / "out"),
         "--data-dir", str(tmp_path / "pg"), "--key-secret", SECRET, "--skip-checks", "--no-notifications",
         "--scenarios", "steady"],
        capture_output=True, text=True, timeout=budget(240))
    assert nxt.returncode == 0, nxt.stdout[-3000:] + nxt.stderr[-2000:]
    assert f"{run_dir}: run killed earlier" in " ".join(nxt.stdout.split()), nxt.stdout[:2000]
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "killed" and "was killed" in manifest["reason"]
    assert manifest["scenarios"]["long"]["status"] == "aborted"
    _none_alive(children, tmp_path)
