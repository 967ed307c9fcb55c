"""A sweep keeps what it measured: stopped at its second size it still writes sweep.json and sweep.html saying
where it stopped, with the points measured before, and the stopped run has its own report."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.pipeline.test_compare_interrupted import SHORT, _left_behind

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _third_run_recording(out: Path) -> bool:
    runs = sorted(out.glob("sweep-*/runs/*/"), key=lambda p: p.stat().st_mtime)
    return len(runs) >= 3 and any(p.stat().st_size > 200 for p in runs[2].glob("samples/burst.csv.gz"))


def test_ctrl_c_at_the_second_size_keeps_the_first_and_says_where_it_stopped(tmp_path: Path) -> None:
    out, log = tmp_path / "out", tmp_path / "sweep.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bookbench", "sweep", "--quick", "--sizes", "1000,2000", "--sets",
             "none,recommended", "--scenario", "burst", "--scenario-file", str(SHORT), "--out", str(out),
             "--data-dir", str(tmp_path / "pg")], stdout=sink, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 200
        while proc.poll() is None and time.monotonic() < deadline and not _third_run_recording(out):
            time.sleep(0.2)
        if proc.poll() is not None or not _third_run_recording(out):
            proc.kill()
            raise AssertionError(f"the second size never started recording: {log.read_text()[-3000:]}")
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=150)
    text = log.read_text()
    assert proc.returncode == 130, text[-3000:]
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
