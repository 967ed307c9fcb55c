"""`bookbench run` end to end: database, dataset, index set, service, warm-up, then each scenario in Locust."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import random
import secrets
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console

from bookbench.artifacts import manifest
from bookbench.artifacts.samples import SAMPLES_FORMAT_VERSION, read_text
from bookbench.checks.base import CheckTarget
from bookbench.checks.runner import run_suites
from bookbench.db import evidence as explain
from bookbench.db import indexes
from bookbench.db.conn import run_with
from bookbench.db.seed import DatasetParams, api_key, seed, table_stats
from bookbench.db.settle import settle
from bookbench.errors import DatabaseError
from bookbench.pipeline import integrity
from bookbench.pipeline.locust_proc import LocustJob, watch
from bookbench.pipeline.stack import ServiceProcess, database
from bookbench.spec.scenarios import Scenario, ScenarioFile, ScenarioFileError, load_scenarios
from bookbench.spec.targets import mask_dsn, require_loopback

WARMUP_REQUESTS = 150  # ~2 per statement per pooled connection; at 60 ms a request without indexes, ~5 s
WARMUP_CONCURRENCY = 24  # >= the service's pool size, so that every pooled connection prepares its statements


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
    master_port: int = 0
    key_secret: str = ""
    checks: bool = True
    # calibration only: CPU work the service adds to every API request (BOOKBENCH_CALIBRATION_DELAY_MS)
    calibration_delay_ms: float = 0.0
    argv: list[str] = dataclasses.field(default_factory=list)


@dataclass
class RunOutcome:
    run_dir: Path
    status: str
    reason: str | None


def _select(spec: ScenarioFile, names: list[str] | None, factor: float) -> dict[str, Scenario]:
    chosen = names or list(spec.scenarios)
    unknown = [n for n in chosen if n not in spec.scenarios]
    if unknown:
        raise ScenarioFileError(f"unknown scenario(s) {', '.join(unknown)}; scenarios.yaml defines "
                                f"{', '.join(spec.scenarios)}")
    return {n: spec.scenarios[n].scaled(factor) if factor != 1.0 else spec.scenarios[n] for n in chosen}


def _new_run_dir(out: Path, index_set: str) -> tuple[str, Path]:
    run_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{index_set}-{secrets.token_hex(2)}"
    run_dir = out / run_id
    for sub in ("samples", "locust", "db", "logs", "config"):
        (run_dir / sub).mkdir(parents=True, exist_ok=True)
    return run_id, run_dir


async def _warm_up(base_url: str, params: DatasetParams) -> int:
    """Touch every endpoint from many connections at once: pooled connections prepare their statements."""
    sem = asyncio.Semaphore(WARMUP_CONCURRENCY)
    rng = random.Random(1)
    today = dt.datetime.now(dt.UTC).replace(hour=9, minute=0, second=0, microsecond=0)

    async def one(client: httpx.AsyncClient, i: int) -> int:
        org = rng.randint(1, params.orgs)
        headers = {"Authorization": f"Bearer {api_key(org, params.key_secret)}"}
        provider, contact = rng.choice(params.providers_of(org)), rng.choice(params.contacts_of(org))
        day = today + dt.timedelta(days=rng.randint(1, 120))
        async with sem:
            if i % 3 == 0:
                r = await client.get(f"/api/v1/providers/{provider}/availability",
                                     params={"date": day.date().isoformat()}, headers=headers)
            elif i % 3 == 1:
                r = await client.get(f"/api/v1/contacts/{contact}/appointments/upcoming", headers=headers)
            else:
                r = await client.post("/api/v1/appointments", headers=headers, json={
                    "contactId": contact, "providerId": provider, "durationMinutes": 30,
                    "start": (day + dt.timedelta(minutes=30 * rng.randint(0, 15))).isoformat()})
            return r.status_code

    async with httpx.AsyncClient(base_url=base_url, timeout=30,
                                 limits=httpx.Limits(max_connections=WARMUP_CONCURRENCY)) as client:
        codes = await asyncio.gather(*(one(client, i) for i in range(WARMUP_REQUESTS)))
    bad = [c for c in codes if c >= 500 or c in (401, 422)]
    if bad:
        raise DatabaseError(f"warm-up failed: {len(bad)} of {len(codes)} requests answered {sorted(set(bad))}")
    return len(codes)


def _count_samples(path: Path) -> int:
    if not path.exists():
        return 0
    return max(read_text(path).count("\n") - 1, 0)


class Run:
    """State of one run: its folder, manifest and the processes it owns."""

    def __init__(self, opts: RunOptions, console: Console) -> None:
        self.opts = opts
        self.console = console
        self.spec = load_scenarios(opts.scenarios_path)
        self.factor = self.spec.quick_factor if opts.quick else (opts.duration_factor or 1.0)
        self.scenarios = _select(self.spec, opts.scenarios, self.factor)
        self.index_set = opts.index_set or self.spec.index_set
        ds: dict[str, Any] = {**self.spec.dataset.model_dump(), **opts.dataset_overrides}
        if opts.anchor is not None:
            ds["anchor"] = opts.anchor
        if opts.key_secret:
            ds["key_secret"] = opts.key_secret
        self.params = DatasetParams(**ds)
        try:
            indexes.load_set(self.index_set)  # unknown set: fail before anything starts
            self.params.validate()
        except DatabaseError as exc:
            raise ScenarioFileError(str(exc)) from None
        if opts.target_url:
            require_loopback(opts.target_url, "--target-url", opts.allow_remote)
        if opts.dsn:
            require_loopback(opts.dsn, "--dsn", opts.allow_remote)
        self.run_id, self.dir = _new_run_dir(opts.out, self.index_set)
        self.dsn: str | None = None
        self.service: ServiceProcess | None = None
        self.base_url = opts.target_url.rstrip("/") if opts.target_url else ""
        self.manifest: dict[str, Any] = {
            "format_version": manifest.MANIFEST_FORMAT_VERSION, "samples_format_version": SAMPLES_FORMAT_VERSION,
            "run_id": self.run_id, "status": "running", "reason": None,
            "command": manifest.masked_command(opts.argv), "git": manifest.git_info(),
            "packages": manifest.packages(), "machine": manifest.machine(),
            "started_at": manifest.now_iso(), "ended_at": None, "quick": opts.quick, "duration_factor": self.factor,
            "target": {"url": mask_dsn(self.base_url) if self.base_url else "self-hosted",
                       "database": mask_dsn(opts.dsn) if opts.dsn else "embedded", "workers": opts.workers,
                       "calibration_delay_ms": opts.calibration_delay_ms},
            "dataset": {"params": self.params.public(), "fingerprint": self.params.fingerprint()},
            "index_set": {"name": self.index_set},
            "scenario_file": {"path": str(opts.scenarios_path), "digest": self.spec.digest(),
                              "thresholds": self.spec.thresholds.model_dump(by_alias=True, exclude_unset=True),
                              "review_targets": self.spec.review_targets.model_dump(),
                              "alert_rules": self.spec.alert_rules.model_dump(),
                              "task_mix": self.spec.task_mix.model_dump(),
                              "noise_threshold": self.spec.noise_threshold},
            "scenarios": {n: {"definition": s.model_dump(), "planned_s": s.duration_s}
                          for n, s in self.scenarios.items()},
        }
        self.save()

    def save(self) -> None:
        manifest.write(self.dir / "manifest.json", self.manifest)

    # -- setup ---------------------------------------------------------------------------------------------
    def prepare_database(self, dsn: str) -> None:
        self.dsn = dsn
        self.console.print(f"dataset: {self.params.appointments:,} appointments (seed {self.params.seed}) ...")
        report = run_with(dsn, lambda conn: seed(conn, self.params))
        self.console.print(f"  {'reused' if report.reused else 'generated'} in {report.seconds:.1f} s")
        removed = run_with(dsn, lambda conn: integrity.reset_bookings(conn, self.params.appointments))
        applied = run_with(dsn, lambda conn: indexes.apply(conn, self.index_set))
        self.console.print(f"index set {self.index_set}: +{len(applied.created)} -{len(applied.dropped)} "
                           f"({removed} bookings of earlier runs removed)")
        status = run_with(dsn, indexes.status)
        counts, sizes = run_with(dsn, table_stats)
        self.manifest["dataset"].update({"row_counts": counts, "table_bytes": sizes, "reused": report.reused,
                                         "seed_seconds": round(report.seconds, 3)})
        self.manifest["index_set"]["indexes"] = [
            {"name": s.name, "table": s.table, "size_bytes": s.size_bytes, "definition": s.definition}
            for s in status]
        self.manifest["index_set"]["all_indexes"] = run_with(dsn, indexes.definitions)
        self.manifest["postgres"] = run_with(dsn, manifest.postgres_facts)
        self.save()

    def start_service(self) -> None:
        assert self.dsn is not None
        env = ({"BOOKBENCH_CALIBRATION_DELAY_MS": str(self.opts.calibration_delay_ms)}
               if self.opts.calibration_delay_ms else {})
        self.service = ServiceProcess(self.dsn, log_path=self.dir / "logs" / "service.log", extra_env=env)
        self.base_url = self.service.start()
        self.console.print(f"service: {self.base_url}")

    def run_checks(self) -> None:
        """The pre-deployment checks against the same service, for the review's go/no-go matrix."""
        suites = ["smoke", "uat", "stress", "preflight"] if self.dsn else ["smoke", "uat", "stress"]
        target = CheckTarget(self.base_url, self.dsn, self.params)
        results = asyncio.run(run_suites(target, suites))
        passed = sum(r.passed for r in results)
        self.console.print(f"checks: {passed}/{len(results)} passed ({', '.join(suites)})")
        (self.dir / "checks.json").write_text(json.dumps(
            {"format_version": 1, "results": [dataclasses.asdict(r) for r in results]}, indent=1))

    def warm_up(self) -> None:
        n = asyncio.run(_warm_up(self.base_url, self.params))
        if self.dsn:
            run_with(self.dsn, lambda conn: integrity.reset_bookings(conn, self.params.appointments))
        self.console.print(f"warm-up: {n} requests")

    def query_evidence(self) -> None:
        """EXPLAIN of every statement and the write cost, on warm caches, before the load; and the counters
        that the index findings diff after it."""
        assert self.dsn is not None
        self.manifest["queries"] = run_with(self.dsn, lambda c: explain.explain_all(c, self.params,
                                                                                    self.dir / "explain"))
        self.manifest["write_cost"] = run_with(self.dsn, lambda c: explain.write_cost(c, self.params))
        self.manifest["table_stats"] = {"before": run_with(self.dsn, explain.table_stats)}
        stats = run_with(self.dsn, integrity.index_stats)
        (self.dir / "db" / "before_pg_stat_user_indexes.json").write_text(json.dumps(stats, indent=2))
        cost = self.manifest["write_cost"]
        self.console.print(f"query evidence: {len(self.manifest['queries'])} plans in explain/, one booking "
                           f"{cost['ms_per_booking']:.2f} ms and {cost['wal_bytes_per_booking']:.0f} B of WAL")
        self.save()

    def after_load(self) -> None:
        if self.dsn and "table_stats" in self.manifest:
            self.manifest["table_stats"]["after"] = run_with(self.dsn, explain.table_stats)
            self.save()

    # -- one scenario --------------------------------------------------------------------------------------
    def _abort_reason(self) -> str | None:
        if self.service is not None and not self.service.alive():
            return f"the service exited with code {self.service.proc.returncode if self.service.proc else '?'}"
        return None

    def run_scenario(self, name: str, scenario: Scenario) -> None:
        entry = self.manifest["scenarios"][name]
        paths = {"samples_path": self.dir / "samples" / f"{name}.csv.gz",
                 "progress_path": self.dir / "logs" / f"progress_{name}.json",
                 "bookings_path": self.dir / "db" / f"{name}_acknowledged_bookings.txt"}
        config = {"scenario_name": name, "scenario": scenario.model_dump(),
                  "task_mix": self.spec.task_mix.model_dump(),
                  "dataset": {k: v for k, v in self.params.public().items() if k != "key_secret"},
                  **{k: str(v) for k, v in paths.items()}}
        config_path = self.dir / "config" / f"{name}.json"
        config_path.write_text(json.dumps(config, indent=2))
        if self.dsn:
            entry["settle"] = run_with(self.dsn, lambda c: settle(c, self.params.appointments))
        id_before = run_with(self.dsn, integrity.max_appointment_id) if self.dsn else 0
        handled_before = integrity.service_handled(self.base_url)
        job = LocustJob(name, self.base_url, self.dir / "locust" / name, self.dir / "logs", config_path,
                        {"BOOKBENCH_KEY_SECRET": self.params.key_secret}, workers=self.opts.workers,
                        remote_workers=self.opts.remote_workers, master_bind=self.opts.master_bind,
                        master_port=self.opts.master_port)
        entry["started_at"] = manifest.now_iso()
        self.save()
        interrupted = False
        try:
            self._drive(job, name, scenario, paths["progress_path"], entry)
        except KeyboardInterrupt:
            interrupted = True
            entry["aborted"] = "interrupted (Ctrl-C)"
            self.console.print("[yellow]interrupted: stopping Locust and keeping what was measured ...[/]")
        finally:
            job.stop()  # a no-op when Locust already ended; SIGINT, then SIGKILL after a grace period
        entry["ended_at"] = manifest.now_iso()
        handled_after = integrity.service_handled(self.base_url)
        entry["counts"] = {
            "samples": _count_samples(paths["samples_path"]),
            "locust": integrity.locust_request_count(self.dir / "locust" / f"{name}.json"),
            "service": None if handled_before is None or handled_after is None else handled_after - handled_before,
        }
        entry["samples_file"] = f"samples/{name}.csv.gz"
        self.save()
        if self.dsn:
            self._integrity(name, entry, paths["bookings_path"], id_before)
        c = entry["counts"]
        self.console.print(f"  {name}: {c['samples']} samples, Locust counted {c['locust']}, "
                           f"service handled {c['service']}")
        if interrupted:
            raise KeyboardInterrupt
        if entry["aborted"]:
            raise DatabaseError(entry["aborted"])
        if c["samples"] == 0:
            raise DatabaseError(f"{name} recorded no request: see logs/locust_{name}*.log and logs/service.log")

    def _drive(self, job: LocustJob, name: str, scenario: Scenario, progress: Path, entry: dict[str, Any]) -> None:
        job.start()
        if self.opts.remote_workers:
            self.console.print(
                f"waiting for {self.opts.remote_workers} remote worker(s); on each worker machine, in a checkout "
                f"with the same scenarios.yaml:\n  BOOKBENCH_KEY_SECRET=<secret> "
                f"locust -f bookbench/load/locustfile.py --worker --master-host <this machine> "
                f"--master-port {job.master_port}")
        entry["aborted"] = watch(job, scenario.duration_s, progress, self.console, self._abort_reason)
        code = job.master.returncode
        if entry["aborted"] is None and code not in (0, None):
            entry["aborted"] = f"Locust exited with code {code} (see logs/locust_{name}*.log)"

    def _integrity(self, name: str, entry: dict[str, Any], bookings: Path, id_before: int) -> None:
        assert self.dsn is not None
        acked = integrity.read_acknowledged(bookings)
        entry["audit"] = run_with(self.dsn, integrity.audit)
        entry["reconciliation"] = run_with(self.dsn, lambda c: integrity.reconcile(c, acked, id_before))
        stats = run_with(self.dsn, integrity.index_stats)
        (self.dir / "db" / f"{name}_pg_stat_user_indexes.json").write_text(json.dumps(stats, indent=2))
        self.save()

    def finish(self, status: str, reason: str | None) -> RunOutcome:
        self.manifest.update({"status": status, "reason": reason, "ended_at": manifest.now_iso()})
        self.save()
        return RunOutcome(self.dir, status, reason)


def execute(opts: RunOptions, console: Console, on_ready: Callable[[Run], None] | None = None) -> RunOutcome:
    run = Run(opts, console)
    console.print(f"run {run.run_id}: {', '.join(run.scenarios)} (durations x{run.factor:g}, "
                  f"{sum(s.duration_s for s in run.scenarios.values()):.0f} s of load)")
    status, reason = "completed", None
    with ExitStack() as stack:
        try:
            if not opts.target_url or opts.dsn:
                run.prepare_database(stack.enter_context(database(opts.dsn, opts.data_dir)))
            if not opts.target_url:
                # registered first: a Ctrl-C while uvicorn is starting must not leave it behind
                stack.callback(lambda: run.service.stop() if run.service else None)
                run.start_service()
            if opts.checks:
                run.run_checks()
            run.warm_up()
            if run.dsn:
                run.query_evidence()
            if on_ready:
                on_ready(run)
            for name, scenario in run.scenarios.items():
                run.run_scenario(name, scenario)
            run.after_load()
        except KeyboardInterrupt:
            status, reason = "interrupted", "interrupted by the user (Ctrl-C)"
        except (DatabaseError, OSError, httpx.HTTPError) as exc:
            status, reason = "failed", str(exc)
            console.print(f"[red]run failed:[/] {exc}")
        return run.finish(status, reason)
