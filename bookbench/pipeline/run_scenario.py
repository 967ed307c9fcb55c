"""One scenario of a run: its Locust config, settling the database, the load under the watchdog, the three counts,
then integrity and notifications. A mixin of pipeline.run.Run, kept apart from the run's set-up steps."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from bookbench.artifacts import run_config, run_files, sample_parts
from bookbench.artifacts import samples as samples_file
from bookbench.artifacts.manifest import Counts, ScenarioEntry, ScenarioStatus, now_iso
from bookbench.artifacts.run_config import RunConfig, RunDataset, TargetRef
from bookbench.config.scenarios import Scenario
from bookbench.db import audit
from bookbench.db.conn import run_with
from bookbench.db.embedded import EmbeddedPostgres
from bookbench.db.settle import settle
from bookbench.errors import DatabaseError, EnvironmentFailure, LoadGeneratorError
from bookbench.load import ship
from bookbench.pipeline import integrity, interference, interrupts, supervisor
from bookbench.pipeline.db_evidence import DbEvidence
from bookbench.pipeline.locust_proc import LocustJob, watch
from bookbench.pipeline.narration import say, warning
from bookbench.pipeline.notify import BacklogSampler, NotifyStack, drain, record_facts
from bookbench.pipeline.run_database import RunDatabase
from bookbench.pipeline.stack import ServiceProcess
from bookbench.pipeline.watchdog import Fault, StackWatch
from bookbench.target.bind import default_profile, for_locust


class RunScenario(RunDatabase):
    """What Run adds for a scenario: the service and notification processes it started, the fault that ended the
    current scenario early."""

    service: ServiceProcess | None
    notify: NotifyStack | None
    fault: Fault | None

    def _locust_config(self, name: str, scenario: Scenario) -> RunConfig:
        f, opts, spec = self.folder, self.plan.opts, self.plan.spec
        return RunConfig(
            scenario_name=name, scenario=scenario, task_mix=spec.task_mix,
            dataset=RunDataset.model_validate({k: v for k, v in self.params.public().items() if k != "key_secret"}),
            samples_dir=str(f.sample_parts(name)), progress_path=str(f.progress(name)),
            bookings_path=str(f.acknowledged(name)), dropped_path=str(f.dropped(name)),
            attempts_path=str(f.attempts(name)), failure_path=str(f.writer_failure(name)),
            target=TargetRef.model_validate(for_locust(opts.target or default_profile(spec.task_mix.protocol),
                                                       self.target)),
            # an open model's rate is shared by the processes that generate load
            processes=max(1, opts.workers + opts.remote_workers))

    def _settle(self, dsn: str) -> dict[str, object]:
        """The database as each scenario starts: the run's own bookings deleted where allowed, vacuumed and warm."""
        own = self.manifest.database_role == "embedded"
        ids = self._deletable()
        # a deployment's database gets no VACUUM or CHECKPOINT from us: reads and the run's own rows only
        maintain = self.manifest.database_role != "deployment"
        settled = run_with(dsn, lambda c: settle(c, self.params.appointments if own else None, ids, maintain))
        self.deleted_ids.update(ids)
        if not own:
            self.rows_deleted += int(settled["bookings_removed"])
        return settled

    def run_scenario(self, name: str, scenario: Scenario, base_url: str, dsn: str | None) -> None:
        f, opts = self.folder, self.plan.opts
        run_config.write(f.config(name), self._locust_config(name, scenario))
        settled = self._settle(dsn) if dsn else None
        cols = self.target.audit_columns()
        measurable = bool(dsn) and cols is not None
        id_before = run_with(dsn, lambda c: audit.max_appointment_id(c, cols)) if dsn and measurable else 0
        handled_before = integrity.service_handled(base_url)
        job = LocustJob(name, base_url, f.locust_prefix(name), f.logs, f.config(name),
                        {"BOOKBENCH_KEY_SECRET": self.params.key_secret}, workers=opts.workers,
                        remote_workers=opts.remote_workers, master_bind=opts.master_bind, master_port=opts.master_port,
                        web_port=opts.web_port)
        entry = self.state.scenario_started(name, settled)
        interrupted = False
        backlog: list[tuple[float, int]] = []
        # the backlog is sampled in a thread of its own: a sample waiting on a stopped database never delays the
        # watchdog's probes or the display
        backlog_sampler: contextlib.AbstractContextManager[object] = contextlib.nullcontext()
        if self.notify is not None and dsn:
            self.notify.set_faults(self.plan.spec.notifications.faults_for(scenario.faults))
            backlog_sampler = BacklogSampler(dsn, id_before, backlog)
        load_start = time.time()
        self.fault = None
        # one probe thread per part (service, database), each with its own deadline; their schedule is logged
        stack = StackWatch(self.service, self.notify, dsn, f.logs / f"watchdog_{name}.log")
        failure: Exception | None = None
        # what else the machine does meanwhile, and Locust's own CPU (issue 23): sampled in a thread during the load
        sampler = interference.for_scenario(dsn, opts.target_url, self.plan.own_database, opts.data_dir,
                                            lambda: [p.pid for p in job.procs])
        # the database under this load (issue 27): pg_stat_statements snapshots and the wait-event sampler, each in
        # a thread of its own; auto_explain's plans only from the embedded server's log (never on a --dsn server)
        evidence = DbEvidence(f, name, dsn, base_url, self.narrate, scenario.warmup_s, scenario.probe_every_s,
                              embedded_log=EmbeddedPostgres(opts.data_dir).log_file if dsn and self.plan.own_database
                              else None, same_role_as_service=not opts.target_url)
        try:
            with sampler, backlog_sampler, stack, evidence:
                self._drive(job, name, scenario, entry, stack)
        except KeyboardInterrupt:
            # later signals no longer raise (see interrupts): what follows runs to its end
            interrupted = True
            entry.aborted = f"{interrupts.reason()} during this scenario"
            self.narrate(warning("stopping Locust and keeping what was measured (counts, audit, report) ..."))
        except Exception as exc:  # anything else mid-scenario: still count and check what was measured, then fail
            failure = exc
            entry.aborted = f"{type(exc).__name__}: {exc}"
        finally:
            job.stop()  # a no-op when Locust already ended; SIGINT, then SIGKILL after a grace period
        status: ScenarioStatus = "interrupted" if interrupted else ("aborted" if entry.aborted else "completed")
        ended = (now_iso(), status, self.fault.part if self.fault else None)
        machine = (sampler.interference(), sampler.generator_cpu())
        self.narrate(say(interference.machine_line(name, *machine), soft_wrap=True))
        handled_after = integrity.service_handled(base_url)
        # every load process has exited: their parts are merged into one file per process, and recorded
        sealed, recorded = self._seal(name)
        c = Counts(samples=recorded, locust=run_files.locust_request_count(f.locust_json(name)),
                   service=None if handled_before is None or handled_after is None else handled_after - handled_before)
        if opts.remote_workers:
            self._remote_samples(name, c)
        if dsn and not measurable:
            entry.integrity_unmeasured = (f"profile {self.target.profile.name} has no audit block: double "
                                          "bookings, lost and phantom bookings not measurable")
        # named only when written: a file named and then missing is damaged, one never written is "no data"
        self.state.scenario_ended(name, ended, c, (f.sample_parts_rel(name) if f.sample_parts(name).is_dir() else None,
                                                   sealed), machine)
        load_end = time.time()
        # the samples are sealed: the window starts at the first request (the samples file's first rows) plus the
        # warm-up and ends when the load stopped
        evidence.finish(sample_parts.first_ts(sample_parts.files(f.sample_parts(name))), scenario.warmup_s,
                        evidence.load_end)
        if dsn and measurable:
            self._integrity(name, entry, dsn, id_before)
        if self.notify is not None and dsn:
            self._notifications(name, scenario, dsn, id_before, (load_start, load_end), backlog)
        self.narrate(say(f"  {name}: {_n(c.samples)} requests recorded · Locust counted {_n(c.locust)} · service "
                         f"handled {_n(c.service)} ({_agreement(c)})"))
        if interrupted:
            raise KeyboardInterrupt
        if failure is not None:
            raise failure
        if self.fault is not None and self.fault.part == "load generator":
            raise LoadGeneratorError(f"{name}: {entry.aborted}")
        if entry.aborted:
            raise EnvironmentFailure(f"{name} ended early: {entry.aborted}")
        if c.samples == 0:
            raise LoadGeneratorError(f"{name} recorded no request: see logs/locust_{name}*.log and logs/service.log")

    def _seal(self, name: str) -> tuple[list[sample_parts.SealedFile] | None, int]:
        """The scenario's sealed sample files and their rows; when sealing fails (a full disk) the parts stay as
        they are, unsealed and still read (`report` then says "not verified"), and the rows are counted there."""
        folder = self.folder.sample_parts(name)
        try:
            sealed = sample_parts.seal(folder)
        except OSError as exc:
            self.narrate(warning(f"  {name}: the sample parts could not be merged ({exc.strerror or exc}); they "
                                 "are kept as written"))
            return None, sample_parts.verify(self.folder.root, self.folder.sample_parts_rel(name), None)[3]
        return sealed, sum(s.rows for s in sealed)

    def _remote_samples(self, name: str, c: Counts) -> None:
        """Says every remote worker whose samples did not all reach the run folder, as the master's receipt names
        them (load/ship.py); their rows are then missing and the counts disagree."""
        problems = ship.read_receipt(ship.receipt_path(self.folder.sample_parts(name)))
        if problems is None and c.locust:
            problems = ["the Locust master left no receipt of its remote workers' samples (it ended before it "
                        "could wait for them, or no worker announced any): their rows are missing"]
        for problem in problems or []:
            self.narrate(warning(f"  {name}: remote samples: {problem}"))

    def _drive(self, job: LocustJob, name: str, scenario: Scenario, entry: ScenarioEntry, stack: StackWatch) -> None:
        remote_workers = self.plan.opts.remote_workers
        if remote_workers:
            # the plan the master hands its remote workers says where this scenario stands in the run: a worker
            # leaves after the last one
            names = list(self.plan.scenarios)
            job.run_place = (self.folder.run_id, names.index(name) + 1, len(names))
            job.worker_wait_s = self.plan.opts.worker_wait
        job.start()
        for i, proc in enumerate(job.procs):
            supervisor.record(self.folder.root, proc.pid, f"locust {name} " + (f"worker {i}" if i else "master"))
        if job.web_port:
            self.narrate(say(f"  live view: Locust's web UI at http://127.0.0.1:{job.web_port} (this scenario)"))
        if remote_workers:
            self.narrate(say(_remote_hint(remote_workers, job.master_bind, job.master_port,
                                          first=job.run_place is not None and job.run_place[1] == 1),
                             soft_wrap=True))

        def abort() -> str | None:
            self.fault = stack.check(job)
            return self.fault.reason if self.fault else None

        if remote_workers:
            try:
                job.wait_for_workers(lambda line: self.narrate(say(line)), abort)
            except LoadGeneratorError as exc:
                self.fault = Fault("load generator", str(exc))
                raise

        entry.aborted = watch(job, scenario.duration_s, self.folder.progress(name), self.narrate, abort)
        code = job.master.returncode
        # the samples writer's own reason (disk full writing samples/x.csv.gz) before anything it caused
        wrote = _writer_failure(self.folder.writer_failure(name))
        if wrote is not None:
            entry.aborted = wrote
        elif entry.aborted is None and code not in (0, None):
            entry.aborted = f"Locust exited with code {code} (see logs/locust_{name}*.log)"

    def _notifications(self, name: str, scenario: Scenario, dsn: str, id_before: int, window: tuple[float, float],
                       backlog: list[tuple[float, int]]) -> None:
        """After the load: let the dispatchers drain this scenario's notifications, then record the facts. A scenario
        that ended early on a fault is measured too (a dead dispatcher's claimed rows are finished by the others
        when their lease runs out); when it cannot be, the manifest says why instead."""
        assert self.notify is not None
        entry = self.manifest.scenarios[name]
        spec = self.plan.spec.notifications
        why_not = None
        if entry.status == "interrupted":
            why_not = f"not measured: {entry.aborted}, before its notifications drained"
        elif entry.fault == "database":
            why_not = f"not measured: {entry.aborted}"
        else:
            try:
                drained = drain(dsn, id_before, spec.drain_timeout_s, backlog, self.notify.cannot_deliver)
                facts = record_facts(dsn, self.folder.notifications(name), name, spec.dispatchers,
                                     spec.faults_for(scenario.faults), id_before, window, spec.drain_timeout_s,
                                     drained, backlog, self.notify.exited())
            except (DatabaseError, OSError) as exc:  # the scenario's own outcome stands; Path B says why it is blank
                why_not = f"not measured: {type(exc).__name__}: {exc}"
        if why_not is not None:
            entry.notifications_unmeasured = why_not  # saved with the run's next step (the next scenario, the end)
            self.narrate(say(f"  {name}: notifications {why_not}"))
            return
        left = backlog[-1][1] if backlog else 0
        took = f"drained {drained[0] - window[1]:.1f} s after the load" if drained[0] else (
            f"NOT drained: {left} pending after {spec.drain_timeout_s:g} s" if drained[1] is None else
            f"NOT drained: {left} pending when {drained[1]}")
        gone = "; ".join(f"{part} exited with code {code}" for part, code in facts.exited.items())
        self.narrate(say(f"  {name}: {facts.outbox.rows:,} notifications queued, {took}, peak backlog "
                         f"{max((b for _, b in backlog), default=0):,}"
                         + (f" ({gone}; the other dispatchers finished the outbox)" if gone and drained[0] else "")))


def _writer_failure(note: Path) -> str | None:
    """Why a load process stopped recording: the master's or local runner's note, else the first worker's (each
    local worker prepares `<note>_w<k>`); None when every writer kept up."""
    reasons = [samples_file.read_failure_note(p) for p in [note, *sorted(note.parent.glob(f"{note.stem}_*"))]]
    return next((r for r in reasons if r is not None), None)


def _remote_hint(count: int, bind: str, port: int, first: bool) -> str:
    """What to start on the worker machines: one `bookbench worker` each joins the whole run."""
    if not first:
        return f"  waiting for {count} remote worker(s) on port {port}"
    host = {"0.0.0.0": "<this machine's address>", "::": "<this machine's address>"}.get(bind, bind)
    return (f"waiting for {count} remote worker(s) on {bind}:{port}; on each worker machine (bookbench installed, "
            f"the same version), once for the whole run:\n  BOOKBENCH_KEY_SECRET=<the dataset secret> bookbench "
            f"worker --master-host {host} --master-port {port}\n(each worker gets every scenario's plan from this "
            "run and leaves after the last one)")


def _agreement(c: Counts) -> str:
    """What the three counts say together: an unknown count is unknown, never agreement."""
    if any(x is not None and x != c.samples for x in (c.locust, c.service)):
        return "COUNTS DIFFER"
    counts = (("Locust's", c.locust), ("the service's", c.service))
    known = [who for who, x in counts if x is not None]
    unknown = [who for who, x in counts if x is None]
    if not unknown:
        return "counts agree"
    said = f"{' and '.join(known)} count agrees; " if known else ""
    return f"{said}{' and '.join(unknown)} count unknown"


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"
