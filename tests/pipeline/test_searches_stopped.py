"""A sweep and a capacity search keep what they measured: stopped in their second run they still write their json
and page saying where they stopped, with what was measured before, and the stopped run has its own report."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.budget import budget
from tests.pipeline.test_compare_interrupted import SHORT, _left_behind
from tests.sample_rows import recorded_any

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _run_recording(out: Path, pattern: str, nth: int) -> bool:
    """True once the nth run folder (1-based, by creation) records requests."""
    runs = sorted(out.glob(pattern), key=lambda p: p.stat().st_mtime)
    return len(runs) >= nth and recorded_any(runs[nth - 1])


def _interrupt_when(cmd: list[str], log: Path, ready: Callable[[], bool]) -> tuple[int, str, list[psutil.Process]]:
    """Start `cmd`, send SIGINT once `ready()`, wait: (exit code, output, the children it had)."""
    with log.open("w") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + budget(200)
        while proc.poll() is None and time.monotonic() < deadline and not ready():
            time.sleep(0.2)
        if proc.poll() is not None or not ready():
            proc.kill()
            raise AssertionError(f"the run to interrupt never started recording: {log.read_text()[-3000:]}")
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=budget(150))
    return proc.returncode, log.read_text(), children


def test_ctrl_c_at_the_second_size_keeps_the_first_and_says_where_it_stopped(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, text, children = _interrupt_when(
        [sys.executable, "-m", "bookbench", "sweep", "--quick", "--sizes", "1000,2000", "--sets", "none,recommended",
         "--scenario", "burst", "--scenario-file", str(SHORT), "--out", str(out), "--data-dir", str(tmp_path / "pg")],
        tmp_path / "sweep.log", lambda: _run_recording(out, "sweep-*/runs/*/", 3))
    assert code == 130, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    folder = Path(text.strip().splitlines()[-2])  # the last line is handle_errors' "interrupted"
    assert folder.parent == out, text[-500:]
    result = json.loads((folder / "sweep.json").read_text())
    stopped = result["stopped"]
    assert stopped["status"] == "interrupted" and stopped["at"].startswith("2,000 appointments"), stopped
    assert "Ctrl-C" in stopped["reason"]
    # the first size is whole (both sets), nothing of the second is shown as measured
    assert {p["appointments"] for pts in result["points"].values() for p in pts} == {1000}
    assert sorted(len(pts) for pts in result["points"].values()) == [1, 1]
    assert (Path(stopped["run"]) / "report.html").exists()
    assert all((Path(p["run"]) / "report.html").exists() for pts in result["points"].values() for p in pts)
    page = (folder / "sweep.html").read_text()
    assert "This sweep was interrupted at 2,000 appointments" in page and "stopped run's report" in page
    assert _left_behind(children, tmp_path / "pg") == []


def test_ctrl_c_in_the_second_step_keeps_the_first_and_marks_the_set_incomplete(tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, text, children = _interrupt_when(
        [sys.executable, "-m", "bookbench", "capacity", "--sets", "recommended", "--start", "20", "--max", "80",
         "--step-s", "3", "--scenario-file", str(SHORT), "--out", str(out), "--data-dir", str(tmp_path / "pg")],
        tmp_path / "capacity.log", lambda: _run_recording(out, "capacity-*/runs/*/", 2))
    assert code == 130, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    folder = Path(text.strip().splitlines()[-2])
    result = json.loads((folder / "capacity.json").read_text())
    stopped, rec = result["stopped"], result["sets"]["recommended"]
    assert stopped["status"] == "interrupted" and "requests/s" in stopped["at"] and "Ctrl-C" in stopped["reason"]
    assert rec["incomplete"] and rec["max_rps"] is None and len(rec["steps"]) == 1, rec
    assert "recommended incomplete (stopped;" in result["headline"]
    assert (Path(stopped["run"]) / "report.html").exists()
    page = (folder / "capacity.html").read_text()
    assert "This capacity search was interrupted at recommended" in page and "incomplete: the search stopped" in page
    assert _left_behind(children, tmp_path / "pg") == []
