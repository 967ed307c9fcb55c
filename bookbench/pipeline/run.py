"""`bookbench run` end to end: database, dataset, index set, service, warm-up, then each scenario in Locust.

The plan comes first (run_plan: nothing is touched before it holds), each scenario is run_scenario's, the database's
rules are run_database's, and every manifest write is a named transition of run_state. What the run says goes to a
Narrator (pipeline.narration) that the caller renders."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from bookbench.artifacts import files as artifact_files
from bookbench.artifacts import run_files
from bookbench.artifacts.folder import RUN_SUBFOLDERS, RunFolder, new_folder
from bookbench.artifacts.manifest import Manifest, RunStatus
from bookbench.checks.base import CheckTarget
from bookbench.checks.runner import run_suites
from bookbench.db import audit
from bookbench.db import evidence as explain
from bookbench.db.conn import run_with
from bookbench.db.lease import database_lease
from bookbench.errors import BookbenchError, EnvironmentFailure, log_exception
from bookbench.load.warmup import warm_up
from bookbench.pipeline import interrupts, supervisor
from bookbench.pipeline.narration import Event, Narrator, say, warning
from bookbench.pipeline.notify import NotifyStack, notify_stack
from bookbench.pipeline.run_plan import RunOptions, RunPlan, new_manifest, plan
from bookbench.pipeline.run_scenario import RunScenario, _agreement
from bookbench.pipeline.run_state import RunState
from bookbench.pipeline.stack import ServiceProcess, database
from bookbench.pipeline.teardown import Teardown
from bookbench.pipeline.watchdog import Fault
from bookbench.target.bind import bind, default_profile
from bookbench.target.client import Target as ApiTarget

# what tests and the other stages import from here
__all__ = ["Run", "RunOptions", "RunOutcome", "RunPlan", "_agreement", "execute", "new_manifest", "plan"]



@dataclass
class RunOutcome:
    run_dir: Path
    status: RunStatus
    reason: str | None

    def require_completed(self, what: str) -> Path:
        """The run folder of a completed run; an interrupted one interrupts the caller (a sweep, a capacity
        search), any other ends it with the run's reason."""
        if self.status == "interrupted":
            raise KeyboardInterrupt
        if self.status != "completed":
            raise EnvironmentFailure(self.reason or f"{what} failed")
        return self.run_dir


class Run(RunScenario):
    """One run in progress: its plan, folder and manifest, and the service it started. Each step takes what it
    needs as arguments (the DSN, the service URL), so a step cannot run before the one it depends on."""

    def __init__(self, p: RunPlan, folder: RunFolder, man: Manifest, narrate: Narrator) -> None:
        self.plan = p
        self.folder = folder
        self.manifest = man
        self.state = RunState(folder.root, man)
        self.narrate = narrate
        self.service: ServiceProcess | None = None
        self.notify: NotifyStack | None = None  # Path B: fake providers and dispatchers, self-hosted runs only
        self.fault: Fault | None = None  # what ended the current scenario early
        self.target: ApiTarget  # bound in bind_target, before the checks and the warm-up
        self.own_ids: list[int] = []  # bookings this run can prove it made: acknowledged ids, attributed phantoms
        self.deleted_ids: set[int] = set()  # of those, the ones already deleted (between scenarios)
        self.rows_deleted = 0  # what the deletions of own_ids really removed

    # -- setup ---------------------------------------------------------------------------------------------
    def start_service(self, dsn: str) -> str:
        env = ({"BOOKBENCH_CALIBRATION_DELAY_MS": str(self.plan.opts.calibration_delay_ms)}
               if self.plan.opts.calibration_delay_ms else {})
        self.service = ServiceProcess(dsn, log_path=self.folder.logs / "service.log", extra_env=env)
        base_url = self.service.start()
        if self.service.proc is not None:
            supervisor.record(self.folder.root, self.service.proc.pid, "service")
        self.narrate(say(f"service: {base_url}"))
        return base_url

    def run_checks(self, base_url: str, dsn: str | None) -> None:
        """The pre-deployment checks against the same service, for the review's go/no-go matrix."""
        suites = ["smoke", "uat", "stress", "preflight"] if dsn else ["smoke", "uat", "stress"]
        providers = None
        if self.notify is not None:
            suites.append("notifications")
            providers = {"sms": self.notify.url("sms"), "calendar": self.notify.url("calendar")}
        results = asyncio.run(run_suites(CheckTarget(base_url, dsn, self.params, providers=providers,
                                                       api=self.target), suites))
        passed = sum(r.passed for r in results)
        skipped = [r.suite for r in results if r.skipped]
        ran = len(results) - len(skipped)
        # a suite that does not apply to the profile is not run, and said so: never a pass, never a failure
        not_run = f", {', '.join(skipped)} not run (not applicable to {self.target.profile.name})" if skipped else ""
        self.narrate(say(f"checks: {passed}/{ran} passed ({', '.join(suites)}){not_run}"))
        run_files.write_checks(self.folder.checks, [dataclasses.asdict(r) for r in results])

    def bind_target(self, dsn: str | None) -> None:
        """The profile's pools and credentials, resolved once (a SQL pool through the run's database)."""
        # a pool read by list calls asks the address the run loads (already judged by the loopback rule)
        self.target = bind(self.plan.opts.target or default_profile(self.plan.spec.task_mix.protocol),
                           self.plan.spec.task_mix.protocol, self.params, dsn, base_url=self.plan.opts.target_url)
        prof = self.target.profile
        self.narrate(say(f"target profile {prof.name}: {len(self.target.tenants)} tenant(s), "
                         f"{sum(len(t.contacts) for t in self.target.tenants):,} contacts, "
                         f"{sum(len(t.providers) for t in self.target.tenants):,} providers"))
        self.state.target_bound(prof.name, prof.digest())

    def warm_up(self, base_url: str, dsn: str | None) -> None:
        done = asyncio.run(warm_up(base_url, self.target, self.plan.spec.task_mix))
        n, booked = done.sent, [i for i in (self.target.row_id(str(a)) for a in done.booked) if i is not None]
        deleted = 0
        self.own_ids.extend(booked)
        if dsn and booked and self.cleanup_rule().allowed:
            # the scenarios start from the dataset: the warm-up's bookings (and only those) go at once
            deleted = run_with(dsn, lambda conn: audit.delete_own(conn, booked))
            self.rows_deleted += deleted
            self.deleted_ids.update(booked)
        self.narrate(say(f"warm-up: {n} requests, {len(booked)} bookings" + (f" (deleted {deleted})" if deleted
                                                                               else "")))

    def query_evidence(self, dsn: str) -> None:
        """EXPLAIN of every statement and the write cost, on warm caches, before the load; and the counters
        that the index findings diff after it."""
        # on a deployment's database only what reads: a write, even rolled back, locks a real row there
        writes = self.manifest.database_role != "deployment"
        queries = run_with(dsn, lambda c: explain.explain_all(c, self.params, self.folder.explain_dir, writes))
        cost = run_with(dsn, lambda c: explain.write_cost(c, self.params)) if writes else None
        before = run_with(dsn, explain.table_stats)
        run_files.write_rows(self.folder.index_stats("before"), run_with(dsn, audit.index_stats))
        booking = (f"one booking {cost['ms_per_booking']:.2f} ms and {cost['wal_bytes_per_booking']:.0f} B of WAL"
                   if cost else "no write measured (a database bookbench did not create)")
        self.narrate(say(f"query evidence: {len(queries)} plans in explain/, {booking}"))
        self.state.evidence_recorded(queries, cost, before)

    def after_load(self, dsn: str | None) -> None:
        if dsn and self.manifest.table_stats is not None:
            self.state.load_ended(run_with(dsn, explain.table_stats))

    def start_notifications(self, dsn: str, stack: ExitStack) -> None:
        spec = self.plan.spec.notifications
        self.notify = stack.enter_context(notify_stack(dsn, spec.dispatchers, self.folder.logs,
                                                       self.folder.notifications_dir))
        for role, proc in self.notify.procs.items():
            supervisor.record(self.folder.root, proc.pid, role)
        self.narrate(say(f"notifications: {spec.dispatchers} dispatcher(s), fake SMS gateway "
                         f"{self.notify.url('sms')}, fake calendar {self.notify.url('calendar')}"))


def _steps(run: Run, stack: ExitStack, on_ready: Callable[[Run], None] | None, teardown: Teardown) -> None:
    opts = run.plan.opts
    dsn: str | None = None
    # every clean-up is guarded: its own failure is noted, never the run's reason in place of the first error
    if not opts.target_url or opts.dsn:
        dsn = teardown.enter(stack, "stopping the embedded server", database(opts.dsn, opts.data_dir))
        # one measuring command per database: a second run, seed or re-index waits for nobody and refuses
        teardown.enter(stack, "releasing the database lease",
                       database_lease(dsn, f"bookbench run, folder {run.folder.root}"))
        run.prepare_database(dsn)
        db = dsn
        teardown.callback(stack, "deleting the run's own bookings", lambda: run.clean_up(db))
    if opts.target_url:
        base_url = opts.target_url.rstrip("/")
    else:
        # registered first: a Ctrl-C while uvicorn is starting must not leave it behind
        teardown.callback(stack, "stopping the service", lambda: run.service.stop() if run.service else None)
        base_url = run.start_service(dsn or "")
        if dsn and opts.notifications and run.plan.spec.notifications.enabled:
            run.start_notifications(dsn, teardown.enter(stack, "stopping the notification processes", ExitStack()))
    run.bind_target(dsn)
    if opts.checks:
        run.run_checks(base_url, dsn)
    run.warm_up(base_url, dsn)
    if dsn:
        run.query_evidence(dsn)
    if on_ready:
        on_ready(run)
    for name, scenario in run.plan.scenarios.items():
        run.run_scenario(name, scenario, base_url, dsn)
    run.after_load(dsn)


def execute(opts: RunOptions, narrate: Narrator, on_ready: Callable[[Run], None] | None = None) -> RunOutcome:
    """Plan (usage errors leave nothing behind), create the run folder, then run every step; the manifest
    always ends with a status, and an unexpected error is logged with its traceback in logs/bookbench.log."""
    p = plan(opts)
    for line in supervisor.reap(opts.out):
        narrate(warning(line, markup=False))  # a run folder's name is text, never markup
    folder = RunFolder(new_folder(opts.out, p.index_set, RUN_SUBFOLDERS))
    # room for the last manifest, given back when a write meets a full disk (and at the end)
    artifact_files.reserve_space(folder.root)
    supervisor.claim(folder.root)
    run = Run(p, folder, new_manifest(p, folder.run_id), narrate)
    run.state.started()
    load_s = sum(s.duration_s for s in p.scenarios.values())
    # the load time is what the plan fixes; data, indexes, checks and settling between scenarios come on top
    extra = "set-up, checks and settling" if opts.checks else "set-up and settling"
    narrate(say(f"run {folder.run_id}: {', '.join(p.scenarios)} (durations x{p.factor:g}): {load_s:.0f} s of "
                f"load, plus {extra}"))
    started = time.monotonic()
    status: RunStatus = "failed"
    reason: str | None = "ended unexpectedly"
    teardown = Teardown(folder.log, lambda line: narrate(warning(f"clean-up problem: {line}", markup=False)))
    try:
        with ExitStack() as stack:
            _steps(run, stack, on_ready, teardown)
        status, reason = "completed", None
    except KeyboardInterrupt:
        status, reason = "interrupted", interrupts.reason()
    except (BookbenchError, OSError, httpx.HTTPError, asyncpg.PostgresError) as exc:
        reason = str(exc) or type(exc).__name__
        narrate(Event(f"[red]run failed:[/] {reason}", "failure"))
    except Exception as exc:  # a bug: one line here, the traceback in the run's log
        reason = f"unexpected {type(exc).__name__}: {exc} (traceback in {folder.log})"
        log_exception(folder.log)
        narrate(Event(f"[red]run failed:[/] {reason}", "failure"))
    finally:
        run.state.finished(status, reason, teardown.problems)
        artifact_files.release_space(folder.root)
        narrate(say(f"run {status} in {time.monotonic() - started:.0f} s ({load_s:.0f} s of load planned)"
                    + (f": {reason}" if reason else "")))
    return RunOutcome(folder.root, status, reason)
