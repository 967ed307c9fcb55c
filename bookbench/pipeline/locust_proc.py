"""Locust as subprocesses (one local runner, or a master and N workers), and the wait for them that narrates their
progress line (rendered as one redrawn line on a terminal, plain lines every few seconds when piped)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bookbench.artifacts import run_config
from bookbench.db.embedded import free_port
from bookbench.errors import LoadGeneratorError
from bookbench.load import remote, ship
from bookbench.load.live import Snapshot
from bookbench.pipeline.narration import Event, Narrator
from bookbench.pipeline.probes import Progress

LOCUSTFILE = Path(__file__).resolve().parents[1] / "load" / "locustfile.py"
# longer than the users' request timeout (locustfile.REQUEST_TIMEOUT_S, 10 s): a request still in flight when the
# load ends times out as a failed sample before Locust stops its user, instead of being cut off unrecorded
STOP_TIMEOUT_S = 15


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
    # what watch() last read of the progress file and when it moved (the load generator's liveness)
    progress: Progress | None = None
    # with remote workers: (run id, this scenario's place in the run, the run's number of scenarios), written into
    # the plan the master hands them (bookbench.load.remote), and how long the master waits for them
    run_place: tuple[str, int, int] | None = None
    worker_wait_s: float = 300.0

    def _cmd(self, *extra: str, ui: bool = False, files: str = str(LOCUSTFILE)) -> list[str]:
        # with the UI, --autostart runs the shape at once and --autoquit 0 ends the process when it is done,
        # exactly as --headless would: the same files, the same stop-timeout, the same exit
        mode = (["--autostart", "--autoquit", "0", "--web-host", "127.0.0.1", "--web-port", str(self.web_port)]
                if ui and self.web_port else ["--headless"])
        return [sys.executable, "-m", "locust", "-f", files, *mode, "--host", self.host,
                "--loglevel", "INFO", "--exit-code-on-error", "0",
                # let every user finish its current request at the end, so no request is cut off half-counted
                "--stop-timeout", str(STOP_TIMEOUT_S), *extra]

    def _spawn(self, cmd: list[str], log_name: str, process: str | None = None) -> None:
        log = (self.log_dir / log_name).open("wb")
        env = {**os.environ, **self.env, "BOOKBENCH_RUN_CONFIG": str(self.config_path)}
        if process is not None:  # a local worker's name for its sample parts (samples/<scenario>/w<k>-*.parquet)
            env["BOOKBENCH_PROCESS"] = process
        if "--worker" in cmd and self.procs:
            # a local worker watches its master's pid and exits when the master is gone (see locustfile)
            env["BOOKBENCH_MASTER_PID"] = str(self.procs[0].pid)
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
        files = str(LOCUSTFILE)
        if self.remote_workers > 0:
            # the master loads the plan module too, and so hands it to every remote worker that asks for it
            files += f",{self._write_plan()}"
        # remote workers: wait_for_workers() gives up after worker_wait_s with the count; Locust's own limit is
        # only the backstop (without one the master would wait forever for a worker that never comes)
        self._spawn(self._cmd(*csv, "--master", "--master-bind-host", self.master_bind, "--master-bind-port",
                              str(port), "--expect-workers", str(self.workers + self.remote_workers),
                              "--expect-workers-max-wait", str(max(300, int(self.worker_wait_s) + 60)), ui=True,
                              files=files),
                    f"locust_{self.name}_master.log")
        for i in range(self.workers):
            self._spawn(self._cmd("--worker", "--master-host", "127.0.0.1", "--master-port", str(port)),
                        f"locust_{self.name}_worker{i + 1}.log", process=f"w{i + 1}")

    def _write_plan(self) -> Path:
        if self.run_place is None:
            raise ValueError("a job with remote workers needs run_place (run id, place, scenarios)")
        plan = remote.plan_for(run_config.read(self.config_path), self.host, *self.run_place)
        return remote.write_module(plan, self.config_path.with_name(f"{self.config_path.stem}_plan.py"))

    def connected_workers(self) -> int:
        """Workers the master counts as connected, from its log (the latest of its ready / waiting / quit lines;
        Locust tells no one else)."""
        try:
            text = (self.log_dir / f"locust_{self.name}_master.log").read_text(errors="replace")
        except FileNotFoundError:
            return 0
        found = [(m.start(), int(m.group(1))) for pattern in _CONNECTED for m in pattern.finditer(text)]
        return max(found)[1] if found else 0

    def wait_for_workers(self, say: Callable[[str], None], abort: Callable[[], str | None]) -> None:
        """Until every worker connected: says who is missing every WORKERS_SAID_EVERY_S, and after worker_wait_s
        stops the master and raises LoadGeneratorError with the count. Returns early when the master ended or
        `abort()` names a fault (watch() then reports either)."""
        expected = self.workers + self.remote_workers
        local = f" ({self.workers} local, {self.remote_workers} remote)" if self.workers else ""
        started = last_said = time.monotonic()
        while self.running() and not abort():
            connected = self.connected_workers()
            if connected >= expected:
                return
            waited = time.monotonic() - started
            if waited >= self.worker_wait_s:
                self.stop()
                raise LoadGeneratorError(f"gave up waiting for workers: {connected} of {expected} connected{local} "
                                         f"after {waited:.0f} s (--worker-wait {self.worker_wait_s:g}; see "
                                         f"logs/locust_{self.name}_master.log)")
            if time.monotonic() - last_said >= WORKERS_SAID_EVERY_S:
                say(f"  waiting for remote workers: {connected} of {expected} connected{local} ({waited:.0f} s of "
                    f"{self.worker_wait_s:g} s)")
                last_said = time.monotonic()
            time.sleep(0.5)

    @property
    def master(self) -> subprocess.Popen[bytes]:
        return self.procs[0]

    def running(self) -> bool:
        return self.master.poll() is None

    def stop(self, grace_s: float = STOP_TIMEOUT_S + 15.0) -> None:
        """SIGCONT to every process, then SIGINT to the master (or local runner): the locustfile ends the shape, so
        Locust stops as at the plan's end (users finish their request in flight, its files are written, `quitting`
        fires) and tells its workers to stop too; SIGKILL to whatever is left after `grace_s`. When the master is
        already gone, its workers are killed at once: nothing they measure can reach a file any more, and every
        second they live is load nobody records.

        SIGCONT first: a stopped process keeps SIGINT pending until it is continued, so without it a SIGSTOPped
        Locust would sit out the whole grace period and lose its samples to SIGKILL.
        Not SIGTERM: a headless run with a LoadTestShape waits on the shape before Locust installs its SIGTERM
        handler, so SIGTERM would kill it on the spot and lose the last samples; SIGINT is handled there.
        No SIGINT to a worker: it would die mid-request with its last samples unsent; its master stops it.
        """
        if self.procs and self.master.poll() is not None:
            self.kill_workers()
        for proc in self.procs:
            if proc.poll() is None:
                _signal_group(proc, signal.SIGCONT)
        if self.procs and self.master.poll() is None:
            _signal_group(self.master, signal.SIGINT)
        # a master with remote workers waits for their samples before it quits (load/ship.py): its own bound first
        deadline = time.monotonic() + grace_s + (ship.IDLE_S if self.remote_workers else 0.0)
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)

    def kill_workers(self) -> None:
        """SIGKILL to every local worker's group (the master died: they must not outlive it)."""
        for proc in self.procs[1:]:
            if proc.poll() is None:
                _signal_group(proc, signal.SIGKILL)
        for proc in self.procs[1:]:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)

    def reap_workers(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        for proc in self.procs[1:]:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(5)


# the master's log lines that carry its count of connected workers (Locust 2.x)
_CONNECTED = (re.compile(r"reported as ready\. (\d+) workers connected"),
              re.compile(r"Waiting for workers to be ready, (\d+) of \d+ connected"),
              re.compile(r"quit\. (\d+) workers ready"))
WORKERS_SAID_EVERY_S = 5.0


def _signal_group(proc: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


def _rate(rps: float) -> str:
    return f"{rps:,.1f}" if rps < 100 else f"{rps:,.0f}"


# no completed request for this long while load is planned is said on the progress line as it happens
STALL_SHOWN_S = 3.0


def progress_line(name: str, planned_s: float, snap: Snapshot | None, now: float | None = None) -> str:
    """One labelled line of exact figures; time is load time, never past the plan (Locust's stop-timeout lets the
    last requests finish after it, shown as "finishing"). With `now` (epoch s), a snapshot that stopped coming
    adds its age to the time without a completed request: a stuck Locust completes nothing either."""
    if snap is None or snap.elapsed_s is None:
        return f"{name}: starting Locust ..."
    if snap.elapsed_s > planned_s:
        clock = f"{planned_s:.0f}/{planned_s:.0f} s, finishing in-flight requests"
    else:
        clock = f"{snap.elapsed_s:.0f}/{planned_s:.0f} s"
    if snap.elapsed_s <= planned_s and snap.users > 0 and snap.idle_s is not None:
        idle = snap.idle_s + (max(0.0, now - snap.t) if now is not None else 0.0)
        if idle >= STALL_SHOWN_S:
            clock += f" · no request completed for {idle:.0f} s"
    if snap.offered_rps is not None or snap.in_flight is not None:
        # open model: Locust's one arrival scheduler per process is no measure of load; the offered rate and the
        # requests under way are
        load = [f"offered {snap.offered_rps:,g}/s"] if snap.offered_rps is not None else []
        load += [f"{snap.in_flight:,} in flight"] if snap.in_flight is not None else []
        users = ", ".join(load)
    else:
        users = f"{snap.users} user" + ("" if snap.users == 1 else "s")
    recent = [f"{_rate(snap.recent_rps)} req/s"] if snap.recent_rps is not None else []
    if snap.recent_p95_ms is not None:
        recent.append(f"P95 {snap.recent_p95_ms:,.1f} ms")
    window = f"last {snap.window_s:.0f} s: {', '.join(recent)} · " if recent else ""
    overall = f"P95 {snap.p95_ms:,.1f} ms, " if snap.p95_ms is not None else ""
    rate = f" ({100 * snap.failures / snap.requests:.2f} %)" if snap.requests else ""
    return f"{name} {clock} · {users} · {window}all: {overall}errors {snap.failures:,} of {snap.requests:,}{rate}"


def watch(job: LocustJob, planned_s: float, progress_path: Path, narrate: Narrator,
          abort: Callable[[], str | None]) -> str | None:
    """Wait for the job while narrating its progress line twice a second (the renderer decides what a terminal
    and a pipe show: pipeline.narration); returns why it was aborted (by `abort()`, asked twice a second, which must
    not block: the watchdog's probes run in threads of their own), or None."""
    narrate(Event(progress_line(job.name, planned_s, None), "progress_start"))
    snap: Snapshot | None = None
    reason: str | None = None
    final = ""  # stays empty when an exception ends the wait: the display stops, nothing more is said
    # read by the watchdog (abort()): a progress file that stops moving is a stuck load generator, so this loop
    # never waits for ever on a stopped Locust
    job.progress = Progress(planned_s)
    try:
        while job.running():
            # twice a second, or at once when Locust exits (a plain sleep kept every scenario up to 0.5 s longer)
            with contextlib.suppress(subprocess.TimeoutExpired):
                job.master.wait(0.5)
            snap = Snapshot.read(progress_path) or snap
            job.progress.see(snap)
            narrate(Event(progress_line(job.name, planned_s, snap, time.time()), "progress"))
            reason = abort()
            if reason:
                job.stop()
                break
        if reason is None and job.master.returncode not in (0, None):
            # the master died (killed, crashed): named by abort() as a load generator fault; its workers go now
            reason = abort()
            job.stop()
        final = progress_line(job.name, planned_s, Snapshot.read(progress_path) or snap)
    finally:
        narrate(Event(final, "progress_end"))
    if reason is None:
        job.reap_workers()
    return reason
