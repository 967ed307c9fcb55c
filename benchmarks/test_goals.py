"""The goal helper and --bench-check: a missed goal prints `NOT met` under `make bench` and fails its test (after
the test has printed everything) under `make bench-check`. Cheap: no load, no database."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmarks import goals

ROOT = Path(__file__).resolve().parents[1]


def test_goal_prints_its_verdict_and_remembers_a_miss(capsys: pytest.CaptureFixture[str]) -> None:
    goals.take_missed()
    assert goals.goal("ratio", 0.91, ">=", 0.8)
    assert not goals.goal("report", 7.25, "<=", 5, " s")
    assert capsys.readouterr().out.splitlines() == ["ratio: 0.91 (goal >= 0.8: met)",
                                                    "report: 7.25 s (goal <= 5 s: NOT met)"]
    assert goals.take_missed() == ["report: 7.25 s (goal <= 5 s: NOT met)"] and goals.take_missed() == []


def _run_bench(tmp_path: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    """A benchmark file that misses one goal and meets one, run with the benchmarks' conftest as a plugin."""
    test = tmp_path / "test_missing.py"
    test.write_text(textwrap.dedent("""
        from benchmarks.goals import goal

        def test_misses() -> None:
            goal("impossible", 1.0, "<=", 0.001, " s")
            goal("easy", 1.0, ">=", 0.5)
            print("printed after the miss")
    """))
    env_free = {k: v for k, v in os.environ.items() if k != goals.CHECK_ENV}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-p",
                           "benchmarks.conftest", "--rootdir", str(tmp_path), str(test), *flags],
                          capture_output=True, text=True, cwd=ROOT, env=env_free, timeout=120)


def test_make_bench_prints_a_missed_goal_and_passes(tmp_path: Path) -> None:
    done = _run_bench(tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "impossible: 1 s (goal <= 0.001 s: NOT met)" in done.stdout and "printed after the miss" in done.stdout


def test_make_bench_check_fails_a_missed_goal_after_printing_everything(tmp_path: Path) -> None:
    done = _run_bench(tmp_path, "--bench-check")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "printed after the miss" in done.stdout and "easy: 1 (goal >= 0.5: met)" in done.stdout
    assert "stated goal(s) missed (make bench-check):\n  impossible: 1 s (goal <= 0.001 s: NOT met)" in done.stdout
    assert "easy" not in done.stdout.split("stated goal(s) missed")[1]
