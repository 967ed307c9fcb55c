"""How a Locust process of a run ends: a SIGINT that stops the shape as at the plan's end, and a local worker that
never outlives its master. Imported by the locustfile, which registers them; nothing here reads the run's config."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import Any

import gevent
from locust import runners as locust_runners
from locust.runners import STATE_INIT, Runner

# a worker started by bookbench (local, or by `bookbench worker`) exits this long after its master stopped answering
# (Locust's default: 60 s)
MASTER_HEARTBEAT_TIMEOUT_S = 10


class StopAsked:
    """Set by SIGINT once the shape runs: its next tick (within a second) ends the load as at the plan's end."""

    asked = False


def stop_the_shape_on_sigint(runner_of: Callable[[], Runner | None]) -> None:
    """SIGINT (bookbench stopping this scenario early) ends the load as at the plan's end, so every user finishes its
    request in flight (--stop-timeout; a request to a stopped service ends at its timeout, a failed sample) and the
    last samples and Locust's own files are written. Python's default would raise KeyboardInterrupt in whichever
    greenlet runs, often a user in the middle of a request, which then vanishes unrecorded. Before the shape has
    started (a master waiting for its workers) nothing is measured yet, and the default applies; after the load
    ended by itself Locust is finishing anyway. The shape's tick is late only while a slow ramp-up blocks it; the
    SIGKILL after LocustJob.stop's grace period bounds that."""

    def handle(signum: int, frame: Any) -> None:
        runner = runner_of()
        if runner is None or (runner.state == STATE_INIT and getattr(runner, "shape_greenlet", None) is None):
            raise KeyboardInterrupt
        StopAsked.asked = True

    signal.signal(signal.SIGINT, handle)


def process_exists(pid: int) -> bool:
    """True while `pid` runs; a zombie (killed, not yet reaped by bookbench) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: whether a signal could be sent
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def _exit_without_master(pid: int) -> None:
    """A local worker never outlives its master: once the master process is gone (kill -9, a crash) nothing this
    worker measures can reach a file, so every further request would be unrecorded load. It exits at once, without
    Locust's shutdown (which would try to talk to the dead master)."""
    while process_exists(pid):
        gevent.sleep(0.5)
    print(f"bookbench: the Locust master (pid {pid}) is gone; this worker exits", file=sys.stderr, flush=True)
    os._exit(3)


def tie_worker_to_master(master_pid: int | None, remote: bool) -> None:
    """From import on (a worker connects to its master before Locust's init event, and may wait there for a master
    that is already gone): a local worker (`master_pid`, set by bookbench for the workers it starts) exits when that
    process is gone; a local or remote worker quits when its master stops sending heartbeats (stopped by SIGSTOP, or
    a remote worker's master it cannot see), instead of loading the target unrecorded for a minute."""
    if master_pid is not None:
        gevent.spawn(_exit_without_master, master_pid)
    if master_pid is not None or remote:
        locust_runners.MASTER_HEARTBEAT_TIMEOUT = MASTER_HEARTBEAT_TIMEOUT_S
