"""Liveness, not existence: each part a run started is asked on its own schedule, in its own thread, whether it
still answers. A process that exists but does not answer (SIGSTOP, a deadlock, a wedged event loop) is as much a
fault as one that died. Each probe waits on its own deadline, so a stuck database never delays the service's probe,
and no probe ever blocks the watch loop (which only reads the probes' last answers)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bookbench import net
from bookbench.artifacts.files import append_text
from bookbench.load.live import Snapshot

# a part (service, database, Locust) silent this long is named as hung: the bound a hang is detected within
HANG_S = 10.0
# Locust's first progress snapshot comes after it imported everything (slow on a busy machine)
STARTUP_S = 60.0
# after the planned load Locust lets in-flight requests finish (--stop-timeout) and writes its files
END_GRACE_S = 45.0


class ProbeLog:
    """One line per probe, `<epoch start> <seconds taken> <part> ok|<problem>`: the schedule the probes really
    kept, for whoever reads a run's logs (and for the tests that check it)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, started: float, took_s: float, part: str, problem: str | None) -> None:
        if self.path is None:
            return
        line = f"{started:.3f} {took_s:.3f} {part} {problem or 'ok'}\n"
        with self._lock:
            append_text(self.path, line)


class Probe:
    """Asks `ask()` (None: answered; else what went wrong) every `every_s` in a daemon thread; `silent_s()` is how
    long the part has gone without an answer, counted from the start when it never answered."""

    def __init__(self, part: str, ask: Callable[[], str | None], every_s: float, log: ProbeLog) -> None:
        self.part = part
        self.ask = ask
        self.every_s = every_s
        self.log = log
        self.answered_at = time.monotonic()
        self.problem: str | None = None
        self.failures = 0  # failed probes in a row since the last answer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"probe-{part}", daemon=True)

    def start(self) -> None:
        self.answered_at = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        # not joined: a probe in the middle of its own deadline ends by itself, and nobody needs its answer now
        self._stop.set()

    def silent_s(self) -> float:
        return time.monotonic() - self.answered_at

    def _loop(self) -> None:
        while not self._stop.is_set():
            began, wall = time.monotonic(), time.time()
            problem = self.ask()
            if problem is None:
                self.answered_at = time.monotonic()
            self.failures = 0 if problem is None else self.failures + 1
            self.problem = problem
            self.log.write(wall, time.monotonic() - began, self.part, problem)
            self._stop.wait(max(0.0, began + self.every_s - time.monotonic()))


def http_answers(url: str, timeout_s: float) -> Callable[[], str | None]:
    """Any HTTP answer is life (a 503 is a process that answers); no answer within `timeout_s` is not."""

    def ask() -> str | None:
        try:
            net.get(url, timeout=timeout_s)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return None

    return ask


@dataclass
class Progress:
    """What the watch loop last read of a Locust job's progress file, and when it last moved. The file is rewritten
    every second by a greenlet in the Locust process that records (local runner or master), so a file that stops
    moving while that process exists means the load generator is stopped or hung."""

    planned_s: float
    moved_at: float = field(default_factory=time.monotonic)
    snap: Snapshot | None = None

    def see(self, snap: Snapshot | None) -> None:
        if snap is not None and (self.snap is None or snap.t != self.snap.t):
            self.snap, self.moved_at = snap, time.monotonic()

    def still_s(self) -> float:
        return time.monotonic() - self.moved_at

    def load_planned(self) -> bool:
        """Load is still planned until the shape's clock passed the plan (before it starts, too)."""
        return self.snap is None or self.snap.elapsed_s is None or self.snap.elapsed_s <= self.planned_s

    def deadline_s(self) -> float:
        if self.snap is None:
            return STARTUP_S
        return HANG_S if self.load_planned() else END_GRACE_S
