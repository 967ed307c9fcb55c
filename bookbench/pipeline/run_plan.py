"""What a run will do, decided before anything starts: its options (RunOptions), the validated plan (RunPlan: no
process, no folder, no database yet) and the manifest it begins with."""

from __future__ import annotations

import dataclasses
import datetime as dt
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bookbench.artifacts import manifest as manifest_file
from bookbench.artifacts.manifest import (
    AS_FOUND,
    IndexSet,
    Manifest,
    ScenarioEntry,
    ScenarioFileInfo,
    Target,
)
from bookbench.artifacts.manifest import Dataset as ManifestDataset
from bookbench.artifacts.sample_parts import FORMAT as SAMPLES_FORMAT_VERSION
from bookbench.config.dataset import DatasetParams
from bookbench.config.dsn import mask_dsn
from bookbench.config.scenarios import (
    CommandLineLoad,
    Scenario,
    ScenarioFile,
    ScenarioFileError,
    load_scenarios,
    with_command_line,
)
from bookbench.config.targets import pin_loopback
from bookbench.db import indexes
from bookbench.errors import UsageError
from bookbench.pipeline import facts
from bookbench.target import profile as target_profile
from bookbench.target.bind import default_profile
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


def _select(spec: ScenarioFile, names: list[str] | None, factor: float) -> dict[str, Scenario]:
    # by default every scenario the file runs by default (fault scenarios such as provider_outage are asked for)
    chosen = names or [n for n, sc in spec.scenarios.items() if sc.default]
    unknown = [n for n in chosen if n not in spec.scenarios]
    if unknown:
        raise ScenarioFileError(f"unknown scenario(s) {', '.join(unknown)}; scenarios.yaml defines "
                                f"{', '.join(spec.scenarios)}")
    return {n: spec.scenarios[n].scaled(factor) if factor != 1.0 else spec.scenarios[n] for n in chosen}


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
