"""Locust as subprocesses (one local runner, or a master and N workers) with a progress display: one redrawn line
on a terminal, plain lines every few seconds when piped."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.text import Text

from bookbench.db.embedded import free_port
from bookbench.load.live import Snapshot

LOCUSTFILE = Path(__file__).resolve().parents[1] / "load" / "locustfile.py"


@dataclass
class LocustJob:
    """One scenario's Locust processes; `stop()` asks them to finish cleanly, then insists."""

    name: str
    host: str
    csv_prefix: Path
    log_dir: Path
    config_path: Path
    env: dict[str, str]
    workers: int = 0
    # workers started by hand on other machines; the master waits for them too
    remote_workers: int = 0
    master_bind: str = "127.0.0.1"
    master_port: int = 0
    # Locust's own web UI on 127.0.0.1:web_port while the test runs (None: headless)
    web_port: int | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def _cmd(self, *extra: str, ui: bool = False) -> list[str]:
        # with the UI, --autostart runs the shape at once and --autoquit 0 ends the process when it is done,
        # exactly as --headless would: the same files, the same stop-timeout, the same exit
        mode = (["--autostart", "--autoquit", "0", "--web-host", "127.0.0.1", "--web-port", str(self.web_port)]
                if ui and self.web_port else ["--headless"])
        return [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), *mode, "--host", self.host,
                "--loglevel", "INFO", "--exit-code-on-error", "0",
                # let every user finish its current request at the end, so no request is cut off half-counted
                "--stop-timeout", "10", *extra]

    def _spawn(self, cmd: list[str], log_name: str) -> None:
        log = (self.log_dir / log_name).open("wb")
        env = {**os.environ, **self.env, "BOOKBENCH_RUN_CONFIG": str(self.config_path)}
        # own session: a Ctrl-C reaches bookbench first, which then stops Locust cleanly (samples flushed)
        self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                           start_new_session=True))
        log.close()

    def start(self) -> None:
        # --json-file is written after the runner has quit (unlike the CSVs, refreshed once a second), so it
        # holds Locust's final count for cross-checking ours
        csv = ["--csv", str(self.csv_prefix), "--csv-full-history", "--only-summary",
               "--json-file", str(self.csv_prefix)]
        if self.workers <= 0 and self.remote_workers <= 0:
            self._spawn(self._cmd(*csv, ui=True), f"locust_{self.name}.log")
            return
        port = self.master_port or free_port()
        self.master_port = port
        self._spawn(self._cmd(*csv, "--master", "--master-bind-host", self.master_bind, "--master-bind-port",
                              str(port), "--expect-workers", str(self.workers + self.remote_workers),
                              # without a limit the master would wait forever for a worker that never comes
                              "--expect-workers-max-wait", "300", ui=True),
                    f"locust_{self.name}_master.log")
        for i in range(self.workers):
            self._spawn(self._cmd("--worker", "--master-host", "127.0.0.1", "--master-port", str(port)),
                        f"locust_{self.name}_worker{i + 1}.log")

    @property
    def master(self) -> subprocess.Popen[bytes]:
        return self.procs[0]

    def running(self) -> bool:
        return self.master.poll() is None

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGINT (Locust stops users, writes its files, fires `quitting`), then SIGKILL after `grace_s`.

        Not SIGTERM: a headless run with a LoadTestShape waits on the shape before Locust installs its SIGTERM
        handler, so SIGTERM would kill it on the spot and lose the last samples; SIGINT is handled there.
        """
        for proc in self.procs:
            if proc.poll() is None:
                _signal_group(proc, signal.SIGINT)
        deadline = time.monotonic() + grace_s
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(5)

    def reap_workers(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        for proc in self.procs[1:]:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(5)


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _rate(rps: float) -> str:
    return f"{rps:,.1f}" if rps < 100 else f"{rps:,.0f}"


def progress_line(name: str, planned_s: float, snap: Snapshot | None) -> str:
    """One labelled line of exact figures; time is load time, never past the plan (Locust's stop-timeout lets the
    last requests finish after it, shown as "finishing")."""
    if snap is None or snap.elapsed_s is None:
        return f"{name}: starting Locust ..."
    if snap.elapsed_s > planned_s:
        clock = f"{planned_s:.0f}/{planned_s:.0f} s, finishing in-flight requests"
    else:
        clock = f"{snap.elapsed_s:.0f}/{planned_s:.0f} s"
    users = f"{snap.users} user" + ("" if snap.users == 1 else "s")
    recent = [f"{_rate(snap.recent_rps)} req/s"] if snap.recent_rps is not None else []
    if snap.recent_p95_ms is not None:
        recent.append(f"P95 {snap.recent_p95_ms:,.1f} ms")
    window = f"last {snap.window_s:.0f} s: {', '.join(recent)} · " if recent else ""
    overall = f"P95 {snap.p95_ms:,.1f} ms, " if snap.p95_ms is not None else ""
    rate = f" ({100 * snap.failures / snap.requests:.2f} %)" if snap.requests else ""
    return f"{name} {clock} · {users} · {window}all: {overall}errors {snap.failures:,} of {snap.requests:,}{rate}"


# a line every this many seconds when the output is not a terminal (CI logs, pipes)
PLAIN_EVERY_S = 5.0


def watch(job: LocustJob, planned_s: float, progress_path: Path, console: Console,
          abort: Callable[[], str | None], tick: Callable[[], None] | None = None) -> str | None:
    """Wait for the job while showing progress; returns why it was aborted (by `abort()`), or None. `tick` runs
    on every round (twice a second), e.g. to sample the notification backlog.

    On a terminal one line is redrawn twice a second; otherwise (piped, CI) a plain line is printed every
    PLAIN_EVERY_S seconds and once at the end, each a whole line of its own."""
    live = Live(Text(progress_line(job.name, planned_s, None)), console=console, refresh_per_second=2,
                transient=False) if console.is_terminal else None
    snap: Snapshot | None = None
    last_plain, printed = time.monotonic(), ""
    reason: str | None = None
    try:
        if live is not None:
            live.start()
        while job.running():
            time.sleep(0.5)
            snap = Snapshot.read(progress_path) or snap
            line = progress_line(job.name, planned_s, snap)
            if live is not None:
                live.update(Text(line, overflow="fold"))  # wraps onto a second line on a narrow terminal
            elif time.monotonic() - last_plain >= PLAIN_EVERY_S and line != printed:
                console.print(line, soft_wrap=True)
                last_plain, printed = time.monotonic(), line
            if tick is not None:
                tick()
            reason = abort()
            if reason:
                job.stop()
                break
    finally:
        if live is not None:
            live.stop()
    final = progress_line(job.name, planned_s, Snapshot.read(progress_path) or snap)
    if live is None and final != printed:
        console.print(final, soft_wrap=True)
    if reason is None:
        job.reap_workers()
    return reason
