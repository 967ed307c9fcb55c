"""`bookbench run` end to end: database, dataset, index set, service, warm-up, then each scenario in Locust."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import socket
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from rich.console import Console

from bookbench.artifacts import files as artifact_files
from bookbench.artifacts import manifest as manifest_file
from bookbench.artifacts import run_files
from bookbench.artifacts import samples as samples_file
from bookbench.artifacts.folder import RUN_SUBFOLDERS, RunFolder, new_folder
from bookbench.artifacts.manifest import (
    AS_FOUND,
    Counts,
    IndexSet,
    Manifest,
    RunStatus,
    ScenarioEntry,
    ScenarioFileInfo,
    Target,
    now_iso,
)
from bookbench.artifacts.manifest import Dataset as ManifestDataset
from bookbench.artifacts.samples import SAMPLES_FORMAT_VERSION
from bookbench.checks.base import CheckTarget
from bookbench.checks.runner import run_suites
from bookbench.db import audit, indexes
from bookbench.db import evidence as explain
from bookbench.db.conn import run_with
from bookbench.db.lease import database_lease
from bookbench.db.settle import settle
from bookbench.errors import (
    BookbenchError,
    DatabaseError,
    EnvironmentFailure,
    LoadGeneratorError,
    UsageError,
    log_exception,
)
from bookbench.pipeline import facts, integrity, interference, interrupts, supervisor
from bookbench.pipeline.locust_proc import LocustJob, watch
from bookbench.pipeline.notify import BacklogSampler, NotifyStack, drain, notify_stack, record_facts
from bookbench.pipeline.run_database import RunDatabase
from bookbench.pipeline.stack import ServiceProcess, database
from bookbench.pipeline.teardown import Teardown
from bookbench.pipeline.warmup import warm_up
from bookbench.pipeline.watchdog import Fault, StackWatch
from bookbench.spec.dataset import DatasetParams
from bookbench.spec.dsn import mask_dsn
from bookbench.spec.scenarios import (
    CommandLineLoad,
    Scenario,
    ScenarioFile,
    ScenarioFileError,
    load_scenarios,
    with_command_line,
)
from bookbench.spec.targets import pin_loopback
from bookbench.target import profile as target_profile
from bookbench.target.bind import bind, default_profile, for_locust
from bookbench.target.client import Target as ApiTarget
from bookbench.target.profile import Profile


@dataclass
class RunOptions:
    scenarios_path: Path
    scenarios: list[str] | None = None
    index_set: str | None = None
    dataset_overrides: dict[str, int] = dataclasses.field(default_factory=dict)
    quick: bool = False
    # scales every duration when set (compare's default 0.5); --quick uses the file's quick_factor instead
    duration_factor: float | None = None
    # one date for every run of a comparison, so that a compare crossing midnight keeps one dataset
    anchor: dt.date | None = None
    out: Path = Path("results")
    target_url: str | None = None
    dsn: str | None = None
    data_dir: Path | None = None
    allow_remote: bool = False
    workers: int = 0
    remote_workers: int = 0
    master_bind: str = "127.0.0.1"
    # with remote workers, one port for the whole run (they find each scenario's master there): 0 means 5557
    master_port: int = 0
    worker_wait: float = 300.0  # seconds each scenario's master waits for its workers, then the run fails
    web_port: int | None = None  # Locust's web UI on 127.0.0.1 during each scenario
    # Path B beside the service (scenarios.yaml's notifications.enabled); compare and sweep turn it off: they
    # measure index sets, and dispatchers draining between scenarios would only add time and CPU noise
    notifications: bool = True
    key_secret: str = ""
    checks: bool = True
    # calibration only: CPU work the service adds to every API request (BOOKBENCH_CALIBRATION_DELAY_MS)
    calibration_delay_ms: float = 0.0
    argv: list[str] = dataclasses.field(default_factory=list)
    # the database is bookbench's own (the embedded cluster): None means "when no --dsn was given"; compare,
    # sweep and capacity open the embedded database themselves and pass True
    own_database: bool | None = None
    # delete this run's own bookings at the end on a database bookbench did not seed (never anything else)
    cleanup: bool = False
    # replace another bookbench dataset on a --dsn database (sweep's sizes); a foreign database is never seeded
    reseed: bool = False
    # a target profile (built-in name or file); None: the reference service's profile for task_mix.protocol
    target: str | None = None
    # bookbench run --users/--duration/--spawn-rate/--scenario-mix: one ad hoc scenario and/or another task mix,
    # applied to the file's definitions in plan()
    command_line: CommandLineLoad = dataclasses.field(default_factory=CommandLineLoad)


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


def _select(spec: ScenarioFile, names: list[str] | None, factor: float) -> dict[str, Scenario]:
    # by default every scenario the file runs by default (fault scenarios such as provider_outage are asked for)
    chosen = names or [n for n, sc in spec.scenarios.items() if sc.default]
    unknown = [n for n in chosen if n not in spec.scenarios]
    if unknown:
        raise ScenarioFileError(f"unknown scenario(s) {', '.join(unknown)}; scenarios.yaml defines "
                                f"{', '.join(spec.scenarios)}")
    return {n: spec.scenarios[n].scaled(factor) if factor != 1.0 else spec.scenarios[n] for n in chosen}


def _count_samples(path: Path) -> tuple[int, str | None]:
    """Rows and sha256 of the samples file, now that Locust has closed it: what `report` checks it against."""
    sealed = samples_file.seal(path)
    return sealed if sealed is not None else (0, None)


@dataclass(frozen=True)
class RunPlan:
    """Everything a run will do, validated before anything starts (no process, no folder, no database yet)."""

    opts: RunOptions
    spec: ScenarioFile
    factor: float
    scenarios: dict[str, Scenario]
    index_set: str  # the set applied, or AS_FOUND
    params: DatasetParams
    own_database: bool  # bookbench's embedded database: seeded, reset and re-indexed freely
    apply_indexes: bool  # False: the database's indexes are left exactly as found
    profile: Profile  # the target profile the load, the warm-up and the checks speak through


def plan(opts: RunOptions) -> RunPlan:
    """Read and check the inputs: scenarios.yaml, the chosen scenarios, dataset, index set, where load may go.
    Raises UsageError (exit 2) naming the option or key; nothing has been touched yet."""
    spec = with_command_line(load_scenarios(opts.scenarios_path), opts.command_line)
    if opts.command_line.adhoc and opts.scenarios:
        raise UsageError("--scenarios picks scenarios of the file, --users/--duration run one ad hoc scenario "
                         "instead: give one or the other")
    if opts.command_line.adhoc and opts.quick:
        raise UsageError("--quick scales the file's durations; an ad hoc run lasts its --duration: drop --quick")
    factor = spec.quick_factor if opts.quick else (opts.duration_factor or 1.0)
    ds: dict[str, Any] = {**spec.dataset.model_dump(), **opts.dataset_overrides}
    if opts.anchor is not None:
        ds["anchor"] = opts.anchor
    if opts.key_secret:
        ds["key_secret"] = opts.key_secret
    params = DatasetParams(**ds)
    params.validate()
    own = opts.own_database if opts.own_database is not None else not opts.dsn
    # the file's default set is applied only to bookbench's own database; anyone else's indexes change only
    # when the user names a set on the command line
    apply_indexes = opts.index_set is not None or (own and not opts.target_url)
    if opts.index_set is not None and opts.target_url and not opts.dsn:
        raise UsageError("--index-set with --target-url needs --dsn (the deployment's database to index)")
    index_set = (opts.index_set or spec.index_set) if apply_indexes else AS_FOUND
    if apply_indexes:
        indexes.load_set(index_set)  # an unknown set fails here, before anything starts
    # judged once, then pinned: every later connection uses the addresses judged, never the name again
    if opts.target_url:
        opts = dataclasses.replace(opts, target_url=pin_loopback(opts.target_url, "--target-url", opts.allow_remote))
    if opts.dsn:
        opts = dataclasses.replace(opts, dsn=pin_loopback(opts.dsn, "--dsn", opts.allow_remote))
    if opts.web_port is not None:
        _check_port_free(opts.web_port)
    if opts.remote_workers:
        # remote workers find every scenario's master on the one port they were given before the run
        opts = dataclasses.replace(opts, master_port=opts.master_port or REMOTE_MASTER_PORT)
        _check_master_port(opts.master_bind, opts.master_port)
    prof = target_profile.load(opts.target or default_profile(spec.task_mix.protocol))
    missing = [op for op, w in spec.task_mix.weights.items() if w > 0 and op not in prof.operations.present()]
    if missing:
        raise UsageError(f"task_mix asks for {', '.join(missing)}, which profile {prof.name} does not define "
                         "(set their weights to 0, or add them under operations)")
    if not prof.reference and not (opts.target_url or prof.base_url):
        raise UsageError(f"profile {prof.name} is not bookbench's reference service: give --target-url (or "
                         "base_url in the profile)")
    if not prof.reference and opts.target_url is None and prof.base_url:
        opts = dataclasses.replace(opts, target_url=pin_loopback(prof.base_url, "base_url", opts.allow_remote))
    return RunPlan(opts, spec, factor, _select(spec, opts.scenarios, factor), index_set, params, own, apply_indexes,
                   prof)


REMOTE_MASTER_PORT = 5557  # Locust's default, and `bookbench worker`'s


def _check_master_port(bind: str, port: int) -> None:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(bind, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as ZeroMQ binds
            sock.bind(address)
    except OSError as exc:
        raise UsageError(f"--master-port {port}: the Locust master cannot listen on {bind}:{port} "
                         f"({exc.strerror or exc}); pick another port (and give it to the workers)") from None


def _check_port_free(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # as Locust's web server binds: a port in TIME_WAIT (free_port leaves its ports there) is free to listen on
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise UsageError(f"--web-port {port}: cannot listen on 127.0.0.1:{port} ({exc.strerror}); "
                             f"pick another port") from None


def new_manifest(p: RunPlan, run_id: str) -> Manifest:
    opts, spec = p.opts, p.spec
    return Manifest(
        samples_format_version=SAMPLES_FORMAT_VERSION, run_id=run_id,
        command=facts.masked_command(opts.argv), git=facts.git_info(), packages=facts.packages(),
        machine=facts.machine(), quick=opts.quick, duration_factor=p.factor,
        target=Target(url=mask_dsn(opts.target_url.rstrip("/")) if opts.target_url else "self-hosted",
                      database=mask_dsn(opts.dsn) if opts.dsn else "embedded", workers=opts.workers,
                      calibration_delay_ms=opts.calibration_delay_ms),
        dataset=ManifestDataset(params=p.params.public(), fingerprint=p.params.fingerprint()),
        index_set=IndexSet(name=p.index_set),
        scenario_file=ScenarioFileInfo(
            path=str(opts.scenarios_path), digest=spec.digest(),
            thresholds=spec.thresholds.model_dump(by_alias=True, exclude_unset=True),
            review_targets=spec.review_targets.model_dump(), alert_rules=spec.alert_rules.model_dump(),
            task_mix=spec.task_mix.model_dump(), noise_threshold=spec.noise_threshold),
        scenarios={n: ScenarioEntry(definition=s.model_dump(), planned_s=s.duration_s)
                   for n, s in p.scenarios.items()},
        notifications_off=manifest_file.notifications_off(bool(opts.target_url), facts.masked_command(opts.argv),
                                                          not opts.notifications, spec.notifications.enabled),
    )


class Run(RunDatabase):
    """One run in progress: its plan, folder and manifest, and the service it started. Each step takes what it
    needs as arguments (the DSN, the service URL), so a step cannot run before the one it depends on."""

    def __init__(self, p: RunPlan, folder: RunFolder, man: Manifest, console: Console) -> None:
        self.plan = p
        self.folder = folder
        self.manifest = man
        self.console = console
        self.service: ServiceProcess | None = None
        self.notify: NotifyStack | None = None  # Path B: fake providers and dispatchers, self-hosted runs only
        self.fault: Fault | None = None  # what ended the current scenario early
        self.target: ApiTarget  # bound in bind_target, before the checks and the warm-up
        self.own_ids: list[int] = []  # bookings this run can prove it made: acknowledged ids, attributed phantoms
        self.deleted_ids: set[int] = set()  # of those, the ones already deleted (between scenarios)
        self.rows_deleted = 0  # what the deletions of own_ids really removed

    @property
    def params(self) -> DatasetParams:
        return self.plan.params

    def save(self) -> None:
        manifest_file.write(self.folder.root, self.manifest)

    # -- setup ---------------------------------------------------------------------------------------------
    def start_service(self, dsn: str) -> str:
        env = ({"BOOKBENCH_CALIBRATION_DELAY_MS": str(self.plan.opts.calibration_delay_ms)}
               if self.plan.opts.calibration_delay_ms else {})
        self.service = ServiceProcess(dsn, log_path=self.folder.logs / "service.log", extra_env=env)
        base_url = self.service.start()
        if self.service.proc is not None:
            supervisor.record(self.folder.root, self.service.proc.pid, "service")
        self.console.print(f"service: {base_url}")
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
        self.console.print(f"checks: {passed}/{ran} passed ({', '.join(suites)}){not_run}")
        run_files.write_checks(self.folder.checks, [dataclasses.asdict(r) for r in results])

    def bind_target(self, dsn: str | None) -> None:
        """The profile's pools and credentials, resolved once (a SQL pool through the run's database)."""
        # a pool read by list calls asks the address the run loads (already judged by the loopback rule)
        self.target = bind(self.plan.opts.target or default_profile(self.plan.spec.task_mix.protocol),
                           self.plan.spec.task_mix.protocol, self.params, dsn, base_url=self.plan.opts.target_url)
        prof = self.target.profile
        self.manifest.target.profile = prof.name
        self.manifest.target.profile_digest = prof.digest()
        self.console.print(f"target profile {prof.name}: {len(self.target.tenants)} tenant(s), "
                           f"{sum(len(t.contacts) for t in self.target.tenants):,} contacts, "
                           f"{sum(len(t.providers) for t in self.target.tenants):,} providers")
        self.save()

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
        self.console.print(f"warm-up: {n} requests, {len(booked)} bookings" + (f" (deleted {deleted})" if deleted
                                                                                 else ""))

    def query_evidence(self, dsn: str) -> None:
        """EXPLAIN of every statement and the write cost, on warm caches, before the load; and the counters
        that the index findings diff after it."""
        # on a deployment's database only what reads: a write, even rolled back, locks a real row there
        writes = self.manifest.database_role != "deployment"
        self.manifest.queries = run_with(dsn, lambda c: explain.explain_all(c, self.params, self.folder.explain_dir,
                                                                            writes))
        cost = self.manifest.write_cost = run_with(dsn, lambda c: explain.write_cost(c, self.params)) if writes \
            else None
        self.manifest.table_stats = {"before": run_with(dsn, explain.table_stats)}
        run_files.write_rows(self.folder.index_stats("before"), run_with(dsn, audit.index_stats))
        booking = (f"one booking {cost['ms_per_booking']:.2f} ms and {cost['wal_bytes_per_booking']:.0f} B of WAL"
                   if cost else "no write measured (a database bookbench did not create)")
        self.console.print(f"query evidence: {len(self.manifest.queries)} plans in explain/, {booking}")
        self.save()

    def after_load(self, dsn: str | None) -> None:
        if dsn and self.manifest.table_stats is not None:
            self.manifest.table_stats["after"] = run_with(dsn, explain.table_stats)
            self.save()

    # -- one scenario --------------------------------------------------------------------------------------
    def start_notifications(self, dsn: str, stack: ExitStack) -> None:
        spec = self.plan.spec.notifications
        self.notify = stack.enter_context(notify_stack(dsn, spec.dispatchers, self.folder.logs,
                                                       self.folder.notifications_dir))
        for role, proc in self.notify.procs.items():
            supervisor.record(self.folder.root, proc.pid, role)
        self.console.print(f"notifications: {spec.dispatchers} dispatcher(s), fake SMS gateway "
                           f"{self.notify.url('sms')}, fake calendar {self.notify.url('calendar')}")

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
            entry.notifications_unmeasured = why_not  # saved with the scenario's outcome
            self.console.print(f"  {name}: notifications {why_not}")
            return
        left = backlog[-1][1] if backlog else 0
        took = f"drained {drained[0] - window[1]:.1f} s after the load" if drained[0] else (
            f"NOT drained: {left} pending after {spec.drain_timeout_s:g} s" if drained[1] is None else
            f"NOT drained: {left} pending when {drained[1]}")
        gone = "; ".join(f"{part} exited with code {code}" for part, code in facts.exited.items())
        self.console.print(f"  {name}: {len(facts.outbox):,} notifications queued, {took}, peak backlog "
                           f"{max((b for _, b in backlog), default=0):,}"
                           + (f" ({gone}; the other dispatchers finished the outbox)" if gone and drained[0] else ""))

    def run_scenario(self, name: str, scenario: Scenario, base_url: str, dsn: str | None) -> None:
        entry = self.manifest.scenarios[name]
        f = self.folder
        run_files.write_config(f.config(name), {
            "scenario_name": name, "scenario": scenario.model_dump(), "task_mix": self.plan.spec.task_mix.model_dump(),
            "dataset": {k: v for k, v in self.params.public().items() if k != "key_secret"},
            "samples_path": str(f.samples(name)), "progress_path": str(f.progress(name)),
            "bookings_path": str(f.acknowledged(name)), "dropped_path": str(f.dropped(name)),
            "attempts_path": str(f.attempts(name)), "failure_path": str(f.writer_failure(name)),
            "target": for_locust(self.plan.opts.target or default_profile(self.plan.spec.task_mix.protocol),
                                 self.target),
            # an open model's rate is shared by the processes that generate load
            "processes": max(1, self.plan.opts.workers + self.plan.opts.remote_workers)})
        if dsn:
            own = self.manifest.database_role == "embedded"
            ids = self._deletable()
            # a deployment's database gets no VACUUM or CHECKPOINT from us: reads and the run's own rows only
            maintain = self.manifest.database_role != "deployment"
            entry.settle = run_with(dsn, lambda c: settle(c, self.params.appointments if own else None, ids,
                                                          maintain))
            self.deleted_ids.update(ids)
            if not own:
                self.rows_deleted += int(entry.settle["bookings_removed"])
        cols = self.target.audit_columns()
        measurable = bool(dsn) and cols is not None
        id_before = run_with(dsn, lambda c: audit.max_appointment_id(c, cols)) if dsn and measurable else 0
        handled_before = integrity.service_handled(base_url)
        opts = self.plan.opts
        job = LocustJob(name, base_url, f.locust_prefix(name), f.logs, f.config(name),
                        {"BOOKBENCH_KEY_SECRET": self.params.key_secret}, workers=opts.workers,
                        remote_workers=opts.remote_workers, master_bind=opts.master_bind, master_port=opts.master_port,
                        web_port=opts.web_port)
        entry.started_at, entry.status = now_iso(), "running"
        self.save()
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
        watch = StackWatch(self.service, self.notify, dsn, f.logs / f"watchdog_{name}.log")
        failure: Exception | None = None
        # what else the machine does meanwhile, and Locust's own CPU (issue 23): sampled in a thread during the load
        sampler = interference.for_scenario(dsn, opts.target_url, self.plan.own_database, opts.data_dir,
                                            lambda: [p.pid for p in job.procs])
        try:
            with sampler, backlog_sampler, watch:
                self._drive(job, name, scenario, entry, watch)
        except KeyboardInterrupt:
            # later signals no longer raise (see interrupts): what follows runs to its end
            interrupted = True
            entry.aborted = f"{interrupts.reason()} during this scenario"
            self.console.print("[yellow]stopping Locust and keeping what was measured (counts, audit, report) ...[/]")
        except Exception as exc:  # anything else mid-scenario: still count and check what was measured, then fail
            failure = exc
            entry.aborted = f"{type(exc).__name__}: {exc}"
        finally:
            job.stop()  # a no-op when Locust already ended; SIGINT, then SIGKILL after a grace period
        entry.ended_at = now_iso()
        entry.status = "interrupted" if interrupted else ("aborted" if entry.aborted else "completed")
        entry.fault = self.fault.part if self.fault else None
        entry.interference, entry.generator_cpu = sampler.interference(), sampler.generator_cpu()
        self.console.print(interference.machine_line(name, entry.interference, entry.generator_cpu), soft_wrap=True)
        handled_after = integrity.service_handled(base_url)
        rows, entry.samples_sha256 = _count_samples(f.samples(name))
        entry.counts = Counts(
            samples=rows, locust=run_files.locust_request_count(f.locust_json(name)),
            service=None if handled_before is None or handled_after is None else handled_after - handled_before)
        # named only when written: a file named and then missing is damaged, one never written is "no data"
        entry.samples_file = f.samples_rel(name) if f.samples(name).exists() else None
        self.save()
        load_end = time.time()
        if dsn and measurable:
            self._integrity(name, entry, dsn, id_before)
        elif dsn:
            entry.integrity_unmeasured = (f"profile {self.target.profile.name} has no audit block: double "
                                          "bookings, lost and phantom bookings not measurable")
        if self.notify is not None and dsn:
            self._notifications(name, scenario, dsn, id_before, (load_start, load_end), backlog)
        c = entry.counts
        self.console.print(f"  {name}: {_n(c.samples)} requests recorded · Locust counted {_n(c.locust)} · service "
                           f"handled {_n(c.service)} ({_agreement(c)})")
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
            self.console.print(f"  live view: Locust's web UI at http://127.0.0.1:{job.web_port} (this scenario)")
        if remote_workers:
            self.console.print(_remote_hint(remote_workers, job.master_bind, job.master_port,
                                            first=job.run_place is not None and job.run_place[1] == 1),
                               soft_wrap=True)

        def abort() -> str | None:
            self.fault = stack.check(job)
            return self.fault.reason if self.fault else None

        if remote_workers:
            try:
                job.wait_for_workers(self.console.print, abort)
            except LoadGeneratorError as exc:
                self.fault = Fault("load generator", str(exc))
                raise

        entry.aborted = watch(job, scenario.duration_s, self.folder.progress(name), self.console, abort)
        code = job.master.returncode
        # the samples writer's own reason (disk full writing samples/x.csv.gz) before anything it caused
        wrote = samples_file.read_failure_note(self.folder.writer_failure(name))
        if wrote is not None:
            entry.aborted = wrote
        elif entry.aborted is None and code not in (0, None):
            entry.aborted = f"Locust exited with code {code} (see logs/locust_{name}*.log)"

    def finish(self, status: RunStatus, reason: str | None) -> RunOutcome:
        for entry in self.manifest.scenarios.values():
            if entry.status == "planned":
                entry.status = "not run"
        self.manifest.status, self.manifest.reason, self.manifest.ended_at = status, reason, now_iso()
        self.save()
        return RunOutcome(self.folder.root, status, reason)


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


def execute(opts: RunOptions, console: Console, on_ready: Callable[[Run], None] | None = None) -> RunOutcome:
    """Plan (usage errors leave nothing behind), create the run folder, then run every step; the manifest
    always ends with a status, and an unexpected error is logged with its traceback in logs/bookbench.log."""
    p = plan(opts)
    for line in supervisor.reap(opts.out):
        console.print(f"[yellow]{line}[/]")
    folder = RunFolder(new_folder(opts.out, p.index_set, RUN_SUBFOLDERS))
    # room for the last manifest, given back when a write meets a full disk (and at the end)
    artifact_files.reserve_space(folder.root)
    supervisor.claim(folder.root)
    run = Run(p, folder, new_manifest(p, folder.run_id), console)
    run.save()
    load_s = sum(s.duration_s for s in p.scenarios.values())
    # the load time is what the plan fixes; data, indexes, checks and settling between scenarios come on top
    extra = "set-up, checks and settling" if opts.checks else "set-up and settling"
    console.print(f"run {folder.run_id}: {', '.join(p.scenarios)} (durations x{p.factor:g}): {load_s:.0f} s of "
                  f"load, plus {extra}")
    started = time.monotonic()
    status: RunStatus = "failed"
    reason: str | None = "ended unexpectedly"
    teardown = Teardown(folder.log, lambda line: console.print(f"clean-up problem: {line}", style="yellow",
                                                                markup=False))
    try:
        with ExitStack() as stack:
            _steps(run, stack, on_ready, teardown)
        status, reason = "completed", None
    except KeyboardInterrupt:
        status, reason = "interrupted", interrupts.reason()
    except (BookbenchError, OSError, httpx.HTTPError, asyncpg.PostgresError) as exc:
        reason = str(exc) or type(exc).__name__
        console.print(f"[red]run failed:[/] {reason}")
    except Exception as exc:  # a bug: one line here, the traceback in the run's log
        reason = f"unexpected {type(exc).__name__}: {exc} (traceback in {folder.log})"
        log_exception(folder.log)
        console.print(f"[red]run failed:[/] {reason}")
    finally:
        run.manifest.cleanup_problems = teardown.problems  # beside the reason, never in its place
        outcome = run.finish(status, reason)
        artifact_files.release_space(folder.root)
        console.print(f"run {status} in {time.monotonic() - started:.0f} s ({load_s:.0f} s of load planned)"
                      + (f": {reason}" if reason else ""))
    return outcome
