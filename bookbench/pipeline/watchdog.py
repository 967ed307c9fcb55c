"""What a run watches while a scenario's load runs: the service, the database, Locust's workers and the
notification stack. A part that dies ends the scenario early with a named reason, instead of the scenario running
to its planned end on fast errors (which would even improve its req/s and P95)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from bookbench.db.conn import database_answers
from bookbench.pipeline.locust_proc import LocustJob
from bookbench.pipeline.notify import NotifyStack
from bookbench.pipeline.stack import ServiceProcess

# the database is probed this often; two failed probes in a row (a restart takes longer) end the scenario
PROBE_EVERY_S = 2.0
PROBE_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Fault:
    part: str  # "service", "database", "load generator", "notifications"
    reason: str


class StackWatch:
    def __init__(self, service: ServiceProcess | None, notify: NotifyStack | None, dsn: str | None) -> None:
        self.service = service
        self.notify = notify
        self.dsn = dsn
        self._next_probe = 0.0
        self._failed_probes = 0

    def check(self, job: LocustJob) -> Fault | None:
        """The first part found dead, or None. A part that died because the database did (the dispatchers exit
        when it goes) is reported as the database's fault."""
        part = self._dead_part(job)
        if part is not None and part.part != "load generator" and self.dsn is not None:
            problem = database_answers(self.dsn, PROBE_TIMEOUT_S)
            return Fault("database", f"the database stopped answering ({problem}); {part.reason}") if problem \
                else part
        return part or self._probe_database()

    def _dead_part(self, job: LocustJob) -> Fault | None:
        if self.service is not None and not self.service.alive():
            code = self.service.proc.returncode if self.service.proc else "?"
            return Fault("service", f"the service exited with code {code} (see logs/service.log)")
        for i, proc in enumerate(job.procs[1:], start=1):
            if proc.poll() not in (None, 0) and job.running():
                return Fault("load generator", f"load generator fault: Locust worker {i} exited with code "
                             f"{proc.returncode} (see logs/locust_{job.name}_worker{i}.log); its users and the "
                             "requests it had in flight are lost, so this scenario's counts are not the service's")
        if self.notify is not None and (dead := self.notify.dead()):
            return Fault("notifications", dead)
        return None

    def _probe_database(self) -> Fault | None:
        if self.dsn is None or time.monotonic() < self._next_probe:
            return None
        self._next_probe = time.monotonic() + PROBE_EVERY_S
        problem = database_answers(self.dsn, PROBE_TIMEOUT_S)
        self._failed_probes = self._failed_probes + 1 if problem else 0
        if self._failed_probes >= 2:
            return Fault("database", f"the database stopped answering ({problem})")
        return None
