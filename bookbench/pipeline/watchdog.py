"""What a run watches while a scenario's load runs: the service, the database, Locust and the notification stack.
A part that dies, or stops answering for HANG_S while its process exists (stopped or hung), ends the scenario early
with a named reason, instead of the scenario running to its planned end on fast errors (which would even improve its
req/s and P95) or waiting for ever on a part that will never answer."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from bookbench.artifacts.samples import WRITER_FAILED_EXIT
from bookbench.db.conn import database_answers
from bookbench.pipeline.locust_proc import LocustJob
from bookbench.pipeline.notify import NotifyStack
from bookbench.pipeline.probes import HANG_S, Probe, ProbeLog, http_answers
from bookbench.pipeline.stack import ServiceProcess

# the database gets a new connection and SELECT 1 this often, each with this deadline (connect, then query)
PROBE_EVERY_S = 2.0
PROBE_TIMEOUT_S = 2.0
# this many refused connections in a row name a dead database before the hang bound
REFUSED_PROBES = 2
# the service gets GET /healthz (no database behind it: a stopped database is the database's fault) this often
SERVICE_EVERY_S = 1.0
SERVICE_TIMEOUT_S = 2.0
LIVENESS_PATH = "/healthz"


@dataclass(frozen=True)
class Fault:
    part: str  # "service", "database", "load generator", "notifications"
    reason: str


def exit_text(code: int | None) -> str:
    """`exited with code 1`, or `was killed by SIGKILL` for a negative Popen return code."""
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class StackWatch:
    """`with StackWatch(...) as watch:` runs one probe thread per part while the load runs; `check()` reads them."""

    def __init__(self, service: ServiceProcess | None, notify: NotifyStack | None, dsn: str | None,
                 log_path: Path | None = None) -> None:
        self.service = service
        self.notify = notify
        self.dsn = dsn
        log = ProbeLog(log_path)
        self.probes: dict[str, Probe] = {}
        if service is not None:
            self.probes["service"] = Probe("service", http_answers(service.base_url + LIVENESS_PATH,
                                                                   SERVICE_TIMEOUT_S), SERVICE_EVERY_S, log)
        if dsn is not None:
            self.probes["database"] = Probe("database", lambda: database_answers(dsn, PROBE_TIMEOUT_S),
                                            PROBE_EVERY_S, log)

    def __enter__(self) -> StackWatch:
        for probe in self.probes.values():
            probe.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for probe in self.probes.values():
            probe.stop()

    def check(self, job: LocustJob) -> Fault | None:
        """The first part found dead or hung, or None. A part that died because the database did (the dispatchers
        exit when it goes) is reported as the database's fault."""
        part = self._dead_part(job)
        if part is not None and part.part != "load generator" and self.dsn is not None:
            problem = database_answers(self.dsn, PROBE_TIMEOUT_S)
            return Fault("database", f"the database stopped answering ({problem}); {part.reason}") if problem \
                else part
        return part or self._hung_part(job)

    def _dead_part(self, job: LocustJob) -> Fault | None:
        if self.service is not None and not self.service.alive():
            code = self.service.proc.returncode if self.service.proc else "?"
            return Fault("service", f"the service exited with code {code} (see logs/service.log)")
        # a samples writer that failed (disk full) exits with its own code and reason, read by run._drive
        if job.master.poll() not in (None, 0, WRITER_FAILED_EXIT):
            return Fault("load generator", f"load generator fault: {_locust_name(job)} (pid {job.master.pid}) "
                         f"{exit_text(job.master.returncode)} (see {_locust_log(job)}); the requests it had not "
                         "yet written are lost, so this scenario's counts are not the service's")
        for i, proc in enumerate(job.procs[1:], start=1):
            if proc.poll() not in (None, 0) and job.running():
                return Fault("load generator", f"load generator fault: Locust worker {i} {exit_text(proc.returncode)}"
                             f" (see logs/locust_{job.name}_worker{i}.log); its users and the requests it had in "
                             "flight are lost, so this scenario's counts are not the service's")
        if self.notify is not None and (dead := self.notify.dead()):
            return Fault("notifications", dead)
        return None

    def _hung_part(self, job: LocustJob) -> Fault | None:
        db = self.probes.get("database")
        # refused twice in a row: nothing listens any more (killed, crashed), which no wait will mend; named at once
        # rather than after HANG_S, while a stopped or slow server (timeouts) gets the whole bound
        if db is not None and db.failures >= REFUSED_PROBES and "ConnectionRefusedError" in (db.problem or ""):
            return Fault("database", f"the database stopped answering: {db.failures} connection attempts in a row "
                         f"refused ({db.problem})")
        if db is not None and db.silent_s() >= HANG_S:
            return Fault("database", f"the database stopped answering: no answer to SELECT 1 for "
                         f"{db.silent_s():.1f} s (hang bound {HANG_S:g} s; last: {db.problem})")
        svc = self.probes.get("service")
        if svc is not None and svc.silent_s() >= HANG_S and self.service is not None and self.service.proc:
            return Fault("service", f"the service stopped answering: no reply to {LIVENESS_PATH} for "
                         f"{svc.silent_s():.1f} s while its process (pid {self.service.proc.pid}) exists (stopped "
                         f"or hung; hang bound {HANG_S:g} s; last: {svc.problem})")
        progress = job.progress
        if progress is not None and job.running() and progress.still_s() >= progress.deadline_s():
            what = ("wrote no progress since it started" if progress.snap is None
                    else "wrote no progress" + (" while load was still planned" if progress.load_planned() else
                                                " while finishing its in-flight requests"))
            return Fault("load generator", f"load generator fault: the load generator is stuck: "
                         f"{_locust_name(job)} (pid {job.master.pid}) {what} for {progress.still_s():.1f} s while "
                         f"its process exists (stopped or hung; bound {progress.deadline_s():g} s; see "
                         f"{_locust_log(job)})")
        return None


def _locust_name(job: LocustJob) -> str:
    return "the Locust master" if len(job.procs) > 1 or job.remote_workers else "the Locust runner"


def _locust_log(job: LocustJob) -> str:
    return f"logs/locust_{job.name}_master.log" if len(job.procs) > 1 or job.remote_workers \
        else f"logs/locust_{job.name}.log"

