"""Rolling compaction of one load process's sample parts: every `every` whole files of a level are merged into one
file of the next level (60 parts of a second into a segment of a minute, 60 of those into one of an hour, ...), so
that a run killed after hours leaves a few files per process, not one per second.

The merge itself (what the files are, how they are merged and named) is the caller's; this module only decides when
and runs it off the caller's loop. In a Locust process that loop is gevent's, and a merge of a busy minute is ~100 ms
of CPU, an hour's seconds: each merge runs in a real OS thread (not a greenlet: gevent's monkey-patching turns
`threading` into greenlets, so the thread is started with the unpatched `_thread`), and pyarrow releases the GIL for
its heavy work. The loop never waits for a merge: it looks once per flush whether the running one finished, and starts
the next one due. One merge at a time, lowest level first, paced to at most half a core (PAUSE): on a 2-core machine
the load's process and its target keep the rest. A process that exits, or hands its folder over, gives the merge
under way up rather than wait for it (an hour's merge is seconds of CPU, longer on a busy machine): the merge checks
between row groups whether to go on, and its inputs stay as they were.
"""

from __future__ import annotations

import _thread
import atexit
import contextlib
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# how long a process that exits waits for the merge it gave up to notice (one row group's work); past this it exits
# anyway, and the folder reads as after a kill: every row once
EXIT_WAIT_S = 30.0
POLL_S = 0.02
# after each step of a merge its thread pauses this many times as long as the step took: the merge then takes at most
# 1 / (1 + PAUSE) of a core, and the loop's thread meets it at the GIL that much less often
PAUSE = 1.0


class Cancelled(Exception):
    """The merge was given up: raised by its `go_on()`."""


# (inputs, go_on) -> the merged file; the merge calls go_on() between steps, and stops where it raises Cancelled
Merge = Callable[[list[Path], Callable[[], None]], Path]


def _native(name: str) -> Any:
    """The standard library's own `_thread.name`, even where gevent has monkey-patched it into greenlets."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("_thread"):
        return monkey.get_original("_thread", name)
    return getattr(_thread, name)


class _Job:
    """One merge in its thread: `lock` is held until it ends (a real lock, so that a process exiting can block on
    it), then `out` or `error` says how it went."""

    def __init__(self, level: int, inputs: list[Path], merge: Merge) -> None:
        self.level = level
        self.inputs = inputs
        self.out: Path | None = None
        self.error: BaseException | None = None
        self.cancelled = False
        self.lock = _native("allocate_lock")()
        self.lock.acquire()
        self._pause = _native("allocate_lock")()  # held: acquiring it again is a wait without the GIL
        self._pause.acquire()
        self._since = time.perf_counter()
        _RUNNING.add(self)
        try:
            _native("start_new_thread")(self._run, (merge,))
        except BaseException:
            _RUNNING.discard(self)
            self.lock.release()
            raise

    def _run(self, merge: Merge) -> None:
        try:
            self.out = merge(self.inputs, self._go_on)
        except BaseException as exc:  # handed to the loop's thread, which says it (a thread's own traceback is lost)
            self.error = exc
        finally:
            self.lock.release()

    def _go_on(self) -> None:
        if not self.cancelled and PAUSE > 0:
            self._pause.acquire(timeout=PAUSE * (time.perf_counter() - self._since))  # released early by give_up
            self._since = time.perf_counter()
        if self.cancelled:
            raise Cancelled

    def cancel(self) -> None:
        self.cancelled = True
        with contextlib.suppress(RuntimeError):  # released already
            self._pause.release()

    def done(self) -> bool:
        return not self.lock.locked()

    def give_up(self, timeout: float) -> None:
        """Ask the merge to stop, and block (a real wait: the loop has nothing else to do) until it has, or timeout."""
        self.cancel()
        if self.lock.acquire(timeout=timeout):
            self.lock.release()


_RUNNING: set[_Job] = set()


@atexit.register
def _give_up_at_exit() -> None:
    for job in list(_RUNNING):
        job.give_up(EXIT_WAIT_S)


class Compactor:
    """Files added at level 0 (a writer's new parts), merged `every` at a time into the next level, off the loop."""

    def __init__(self, every: int, merge: Merge) -> None:
        self.every = every  # below 2: no compaction
        self.merge = merge
        self.levels: list[list[Path]] = [[]]
        self.failed: str | None = None  # why compaction stopped: the files stay as they are, every row still read
        self.merges = 0
        self._job: _Job | None = None

    def add(self, paths: list[Path]) -> None:
        """New whole files; collects the merge that finished, starts the next one due. Never waits."""
        self.levels[0].extend(paths)
        if self._collect():
            self._start()

    def finish(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """Give the merge under way up, wait until it stopped (yielding through `sleep`: gevent's in a Locust
        process, whose message loop must keep running), and start no other: the folder is then handed over."""
        self.every = 0
        if self._job is not None:
            self._job.cancel()
        self._wait(sleep)
        self._collect()

    def drain(self, sleep: Callable[[float], None] = time.sleep) -> None:
        """Run every merge due, one after the other, to its end: what many flushes a second apart would have done
        (tests and benchmarks, which write parts faster than that)."""
        while True:
            self._wait(sleep)
            if not self._collect():
                return
            self._start()
            if self._job is None:
                return

    def _wait(self, sleep: Callable[[float], None]) -> None:
        while self._job is not None and not self._job.done():
            sleep(POLL_S)

    def _collect(self) -> bool:
        """False while a merge runs."""
        job = self._job
        if job is None:
            return True
        if not job.done():
            return False
        self._job = None
        _RUNNING.discard(job)
        if isinstance(job.error, Cancelled):
            return False  # given up on purpose (finish): its inputs are as they were
        if job.error is not None or job.out is None:
            # its inputs are still whole (a merge renames its output only when complete): they are read as they
            # are, and sealed at the end; compaction stops rather than fail again every second
            self.failed = f"{type(job.error).__name__}: {job.error}"
            logging.warning("bookbench: sample compaction stopped (%s); the parts stay as written", self.failed)
            return False
        self.merges += 1
        if len(self.levels) == job.level + 1:
            self.levels.append([])
        self.levels[job.level + 1].append(job.out)
        return True

    def _start(self) -> None:
        if self.failed is not None or self.every < 2:
            return
        for level, waiting in enumerate(self.levels):
            if len(waiting) >= self.every:
                inputs, self.levels[level] = waiting[:self.every], waiting[self.every:]
                self._job = _Job(level, inputs, self.merge)
                return
