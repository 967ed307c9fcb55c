"""The Locust process of benchmarks/compaction_stall.py: bookbench's recorder (load/recorder.py) writing sample parts
once a second, as the real locustfile does, under callers that send GETs with no pause; and a greenlet that measures
how late the gevent loop wakes it, which is what a merge run on the loop (or holding the GIL) would stretch.

Environment: BENCH_SAMPLES (the samples folder, seeded by the driver with an hour of files less one part and one
segment), BENCH_COMPACT_EVERY (0: no compaction), BENCH_OUT (the JSON written at quit).
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, constant, events, task
from locust.env import Environment

from bookbench.artifacts import sample_compaction, sample_parts
from bookbench.artifacts.sample_parts import PartWriter
from bookbench.load.recorder import Recorder

TICK_S = 0.005
RECORDER = Recorder(open_model=False)
LATE: list[tuple[float, float]] = []  # (when, how late) each tick woke, s
FLUSH: list[tuple[float, float]] = []  # (when, how long) each once-a-second flush_local: what the recorder holds
MERGES: list[tuple[int, float, float, float]] = []  # (inputs, when, s, CPU s) of every merge, timed in its thread


def _seeded(writer: PartWriter) -> None:
    """The compactor takes the driver's files as its own: the first flush completes 60 parts (a minute's merge), and
    that minute's segment completes 60 segments (an hour's merge), so both happen within the measured seconds."""
    files = sample_parts.files(writer.folder)
    writer.compaction.levels = [[p for p in files if sample_parts.span(p.name) and "-seg" not in p.name],
                                [p for p in files if "-seg" in p.name]]
    merge = writer.compaction.merge

    def timed(inputs: list[Path], go_on: Callable[[], None]) -> Path:
        started, cpu = time.perf_counter(), time.thread_time()
        out = merge(inputs, go_on)
        MERGES.append((len(inputs), started, time.perf_counter() - started, time.thread_time() - cpu))
        return out

    writer.compaction.merge = timed


@events.init.add_listener  # type: ignore[untyped-decorator]  # Locust: untyped
def _on_init(environment: Environment, **_: Any) -> None:
    RECORDER.env = environment
    environment.events.request.add_listener(RECORDER.on_request)  # type: ignore[no-untyped-call]  # Locust: untyped
    if "BENCH_PAUSE" in os.environ:
        sample_compaction.PAUSE = float(os.environ["BENCH_PAUSE"])
    writer = PartWriter(Path(os.environ["BENCH_SAMPLES"]), "local",
                        compact_every=int(os.environ["BENCH_COMPACT_EVERY"]))
    _seeded(writer)
    RECORDER.writer = writer
    gevent.spawn(_flusher)
    gevent.spawn(_ticker)


def _flusher() -> None:
    while True:
        gevent.sleep(1.0)
        started = time.perf_counter()
        RECORDER.flush_local()
        FLUSH.append((started, time.perf_counter() - started))


def _ticker() -> None:
    while True:
        started = time.perf_counter()
        gevent.sleep(TICK_S)
        LATE.append((started, time.perf_counter() - started - TICK_S))


@events.quitting.add_listener  # type: ignore[untyped-decorator]  # Locust: untyped
def _on_quit(environment: Environment, **_: Any) -> None:
    late = list(LATE)  # the measured seconds end here: the wait below is the quitting process's
    RECORDER.flush_local()
    writer = RECORDER.writer
    assert isinstance(writer, PartWriter)
    writer.compaction.finish(gevent.sleep)  # a merge still running is timed too
    result = {"requests": RECORDER.requests, "rows": writer.written, "late": late, "flush": FLUSH, "merges": MERGES,
              "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    Path(os.environ["BENCH_OUT"]).write_text(json.dumps(result))


class Caller(FastHttpUser):
    wait_time = constant(0)

    @task
    def get(self) -> None:
        self.client.get("/api/v1/providers/1/availability")
