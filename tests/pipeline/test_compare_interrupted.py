"""A compare keeps what it measured: stopped in round 2 it compares round 1 and says so, every run it made has its
report; `compare --runs` refuses runs that did not complete unless forced, and then marks them and never names a
set resting on one the best."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from bookbench.pipeline.compare import Measured, conclude
from tests.budget import budget
from tests.sample_rows import recorded

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DATA = Path(__file__).resolve().parents[1] / "data"
KNOWN = DATA / "known_run"
# one 5 s scenario named burst, run by --quick without checks: a round of two runs takes seconds
SHORT = DATA / "scenarios_compare_stop.yaml"
SECRET = "compare-stop-secret-7a2e"
STOPPED = "interrupted in round 2: rounds 1-1 compared"


def _bookbench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bookbench", *args],
                          capture_output=True, text=True, timeout=budget(180))


def _third_run_recording(runs: Path, seen: list[Path]) -> bool:
    """True once the third run folder (round 2's first run) records requests; `seen` keeps creation order."""
    for d in sorted(runs.glob("*/"), key=lambda p: p.stat().st_mtime) if runs.is_dir() else []:
        if d not in seen:
            seen.append(d)
    return len(seen) >= 3 and recorded(seen[2], "burst")


def _left_behind(procs: list[psutil.Process], data_dir: Path) -> list[str]:
    time.sleep(0.5)
    alive = [" ".join(p.cmdline()) for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(data_dir) in cmd:
            alive.append(cmd)
    return alive


def test_ctrl_c_in_round_2_compares_round_1_and_reports_every_run(tmp_path: Path) -> None:
    out, log = tmp_path / "out", tmp_path / "compare.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bookbench", "compare", "--quick", "--sets", "none,recommended", "--rounds", "2",
             "--scenario-file", str(SHORT), "--out", str(out), "--data-dir", str(tmp_path / "pg"),
             "--key-secret", SECRET], stdout=sink, stderr=subprocess.STDOUT, text=True)
        seen: list[Path] = []
        deadline = time.monotonic() + budget(150)
        while proc.poll() is None and time.monotonic() < deadline:
            if any(_third_run_recording(f / "runs", seen) for f in out.glob("compare-*")):
                break
            time.sleep(0.2)
        if proc.poll() is not None or len(seen) < 3:
            proc.kill()
            raise AssertionError(f"round 2 never started recording: {log.read_text()[-3000:]}")
        children = psutil.Process(proc.pid).children(recursive=True)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=budget(150))
    text = log.read_text()
    assert proc.returncode == 130, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    folder = Path(text.strip().splitlines()[-2])  # the last line is handle_errors' "interrupted"
    assert text.strip().splitlines()[-1] == "interrupted" and folder.parent == out, text[-500:]

    result = json.loads((folder / "compare.json").read_text())
    stopped = result["stopped"]
    assert stopped["summary"] == STOPPED and stopped["status"] == "interrupted", stopped
    assert stopped["round"] == 2 and stopped["rounds_compared"] == 1 and "Ctrl-C" in stopped["reason"]
    # round 1 is compared, and only round 1: one run per set
    assert result["repeat"] == 1 and [len(r) for r in result["runs"].values()] == [1, 1]
    assert result["run_status"] == {"none": ["completed"], "recommended": ["completed"]}
    assert result["scenarios"]["burst"]["recommended"]["vs_baseline"]["p95"]["ratio"] > 0
    # balanced order: round 2 started with recommended, the run the signal stopped
    assert stopped["not_compared"] == [{"label": "recommended", "run": str(seen[2]),
                                        "status": "interrupted by the user (Ctrl-C)"}]
    html = (folder / "compare.html").read_text()
    assert STOPPED in html and "banner incomplete" in html
    assert f"This compare was {STOPPED}." in result["headline"]
    # every run it made has its report, the stopped one too
    made = sorted((folder / "runs").iterdir())
    assert len(made) == 3 and all((d / "report.html").exists() for d in made), [list(d.iterdir()) for d in made]
    assert json.loads((seen[2] / "manifest.json").read_text())["status"] == "interrupted"
    assert _left_behind(children, tmp_path / "pg") == []


def _run(tmp_path: Path, name: str, index_set: str, status: str = "completed", reason: str | None = None) -> Path:
    run = tmp_path / name
    shutil.copytree(KNOWN, run)
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["index_set"]["name"], manifest["status"], manifest["reason"] = index_set, status, reason
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def test_compare_runs_refuses_runs_that_did_not_complete_unless_forced(tmp_path: Path) -> None:
    base = _run(tmp_path, "base", "none")
    stopped = _run(tmp_path, "stopped", "recommended", "interrupted", "stopped by SIGTERM")
    seed = _run(tmp_path, "seed", "seed")
    failed = _run(tmp_path, "failed", "seed", "failed", "load generator fault: Locust worker 1 died")
    killed = _run(tmp_path, "killed", "seed", "killed", "was killed (no clean-up)")

    refused = _bookbench("compare", "--runs", f"{base},{stopped},{failed},{killed}", "--out", str(tmp_path / "out"))
    assert refused.returncode == 2, refused.stdout[-2000:] + refused.stderr[-2000:]
    said = " ".join(refused.stderr.split())
    for line in (f"{stopped}: interrupted (stopped by SIGTERM)", f"{failed}: failed (load generator fault",
                 f"{killed}: killed"):
        assert line in said, said
    assert str(base) + ":" not in said and "--force" in said
    assert not (tmp_path / "out").exists()  # refused before anything was written
    # nor does a stopped run enter a calibration: its spread is the stop's, not the machine's noise
    calibrate = _bookbench("calibrate", "--runs", f"{seed},{base},{seed},{stopped}", "--out", str(tmp_path / "out"),
                           "--calibration", str(tmp_path / "calibration.json"))
    assert calibrate.returncode == 2 and f"{stopped}: interrupted (stopped by SIGTERM)" in " ".join(
        calibrate.stderr.split()), calibrate.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "calibration.json").exists()

    # forced: the interrupted run is compared, marked, and its set is not the best though its P95 ties the lowest
    forced = _bookbench("compare", "--runs", f"{base},{stopped},{seed}", "--force", "--out", str(tmp_path / "out"))
    assert forced.returncode == 0, forced.stdout[-2000:] + forced.stderr[-2000:]
    folder = Path(forced.stdout.strip().splitlines()[-1])
    result = json.loads((folder / "compare.json").read_text())
    assert result["run_status"] == {"none": ["completed"], "recommended": ["interrupted (stopped by SIGTERM)"],
                                    "seed": ["completed"]}
    assert result["best"] == "seed"
    assert "recommended had the lowest P95 but is not named the best set" in result["headline"]
    assert any(str(stopped) in p for p in result["forced_despite"])
    html = (folder / "compare.html").read_text()
    assert '<span class="fail">(interrupted (stopped by SIGTERM))</span>' in html

    # a baseline that did not complete: every ratio rests on it, so no set is the best
    forced = _bookbench("compare", "--runs", f"{stopped},{base}", "--force", "--out", str(tmp_path / "out2"))
    assert forced.returncode == 0, forced.stderr[-2000:]
    result = json.loads((Path(forced.stdout.strip().splitlines()[-1]) / "compare.json").read_text())
    assert result["best"] is None and "no set is named the best" in result["headline"], result["headline"]


def test_a_compare_stopped_before_any_round_completed_says_so(tmp_path: Path) -> None:
    done = _run(tmp_path, "runs/none-1", "none")
    stopped = _run(tmp_path, "runs/recommended-1", "recommended", "interrupted", "stopped by SIGTERM")
    measured = Measured({"none": "none", "recommended": "recommended"}, 3, {"none": [done], "recommended": []},
                        made=[("none", done), ("recommended", stopped)], status="interrupted",
                        reason="recommended: stopped by SIGTERM", stopped_in=1)
    result = conclude(tmp_path, measured, 0.05, False, None, Console(file=None, quiet=True))
    saved = json.loads((tmp_path / "compare.json").read_text())
    assert saved["stopped"]["summary"] == "interrupted in round 1: no round was complete, nothing compared"
    assert saved["scenarios"] == {} and saved["best"] is None
    assert result.stopped is not None and result.stopped.model_dump() == saved["stopped"]
    assert [x["run"] for x in saved["stopped"]["not_compared"]] == [str(done), str(stopped)]
    html = (tmp_path / "compare.html").read_text()
    assert "interrupted in round 1: no round was complete, nothing compared" in html
    assert "runs/none-1/report.html" in html and "runs/recommended-1/report.html" in html
    assert (done / "report.html").exists() and (stopped / "report.html").exists()
