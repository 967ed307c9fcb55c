"""Rolling compaction's scheduling (artifacts/sample_compaction.py): a merge runs in a thread of its own and the
caller never waits for it; a merge that fails stops compaction and leaves its inputs as they were."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bookbench.artifacts import sample_compaction
from bookbench.artifacts.sample_compaction import Compactor


def test_the_caller_never_waits_for_a_merge_and_levels_cascade() -> None:
    gate = sample_compaction._native("allocate_lock")()  # a real lock: it blocks the merge's thread, not the test
    gate.acquire()
    merged: list[list[Path]] = []

    def merge(inputs: list[Path], go_on: Callable[[], None]) -> Path:
        # were the merge run by the caller, this would time out with the gate still closed and the test fail below
        # (the bound is only there so that such a test ends: the gate opens at once otherwise)
        if not gate.acquire(timeout=30.0):
            raise TimeoutError("the gate was never opened")
        gate.release()
        merged.append(inputs)
        return Path(f"seg{len(merged)}")

    compactor = Compactor(2, merge)
    compactor.add([Path("p0"), Path("p1")])  # due: starts, and returns while the merge waits on the gate
    compactor.add([Path("p2"), Path("p3")])  # the first still runs: nothing else starts
    assert merged == [] and compactor.merges == 0
    gate.release()
    compactor.drain()
    assert merged == [[Path("p0"), Path("p1")], [Path("p2"), Path("p3")], [Path("seg1"), Path("seg2")]]
    assert compactor.levels == [[], [], [Path("seg3")]]
    compactor.finish()
    compactor.add([Path("p4"), Path("p5")])  # finished: the folder is handed over, no merge starts any more
    compactor.drain()
    assert len(merged) == 3 and compactor.levels[0] == [Path("p4"), Path("p5")]


def test_a_failed_merge_stops_compaction_and_says_why(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[list[Path]] = []

    def merge(inputs: list[Path], go_on: Callable[[], None]) -> Path:
        calls.append(inputs)
        raise OSError(28, "No space left on device")

    compactor = Compactor(2, merge)
    with caplog.at_level(logging.WARNING):
        compactor.add([Path("p0"), Path("p1")])
        compactor.drain()
        compactor.add([Path("p2"), Path("p3")])
        compactor.drain()
    assert len(calls) == 1 and compactor.merges == 0
    assert compactor.failed == "OSError: [Errno 28] No space left on device"
    assert "sample compaction stopped (OSError: [Errno 28] No space left on device)" in caplog.text


def test_finish_gives_the_merge_under_way_up_and_it_is_no_failure() -> None:
    steps: list[int] = []

    def merge(inputs: list[Path], go_on: Callable[[], None]) -> Path:
        while len(steps) < 10 ** 8:  # as many row groups as it takes: it stops only when given up
            steps.append(1)
            go_on()
        raise AssertionError("never given up")

    compactor = Compactor(2, merge)
    compactor.add([Path("p0"), Path("p1")])
    compactor.finish()
    assert steps and len(steps) < 10 ** 8
    assert compactor.failed is None and compactor.merges == 0 and compactor.levels == [[]]


def test_a_process_that_exits_gives_its_merge_up_and_exits_cleanly() -> None:
    # the merge's pause between steps is made endless: only the exit's give-up can end it, and then "given up" shows
    script = """
import sys
from pathlib import Path
from bookbench.artifacts import sample_compaction
from bookbench.artifacts.sample_compaction import Cancelled, Compactor

sample_compaction.PAUSE = 1e9

def merge(inputs, go_on):
    try:
        while True:
            go_on()
    except Cancelled:
        print("given up", flush=True)
        raise

Compactor(2, merge).add([Path("p0"), Path("p1")])
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "given up\n", "")
