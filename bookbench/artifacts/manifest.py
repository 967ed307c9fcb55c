"""manifest.json of a run folder: what ran, where, on what data and indexes; never a password or key.

The one typed model of the file; pipeline/run.py fills it step by step and every reader goes through read().
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bookbench.artifacts.files import read_model, write_model

MANIFEST_FORMAT_VERSION = 2  # 2: typed model, status "killed", scenario "status"
AS_FOUND = "as-found"  # the index set label of a run that left a user's indexes untouched
RunStatus = Literal["running", "completed", "interrupted", "failed", "killed"]
ScenarioStatus = Literal["planned", "running", "completed", "aborted", "interrupted", "not run"]


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class _Model(BaseModel):
    # unknown keys are refused, so that writer and readers cannot drift apart unnoticed
    model_config = ConfigDict(extra="forbid")


class Target(_Model):
    url: str  # masked; "self-hosted" for the reference service bookbench started
    database: str  # masked DSN or "embedded"
    workers: int = 0
    calibration_delay_ms: float = 0.0
    profile: str | None = None  # the target profile's name (None: runs from before profiles)
    profile_digest: str | None = None  # its content's hash: two runs through different profiles do not compare


class Dataset(_Model):
    params: dict[str, Any]  # DatasetParams.public(): the key secret only as a fingerprint
    fingerprint: str
    row_counts: dict[str, int] | None = None
    table_bytes: dict[str, int] | None = None
    reused: bool | None = None
    seed_seconds: float | None = None


class IndexInfo(_Model):
    name: str
    table: str
    size_bytes: int
    definition: str


class IndexSet(_Model):
    name: str  # the set applied, or AS_FOUND when bookbench left the database's indexes as they were
    indexes: list[IndexInfo] | None = None  # the set's indexes as found after applying it
    all_indexes: list[dict[str, Any]] | None = None  # every index on the tables (for the redundancy finding)
    # the performance indexes (not constraints) before and after bookbench's step, and what it changed: on a
    # database bookbench did not create, a set is applied only when named on the command line
    applied: bool = True
    before: list[str] | None = None
    after: list[str] | None = None
    created: list[str] = Field(default_factory=list)
    dropped: list[str] = Field(default_factory=list)


class Cleanup(_Model):
    """What the run deleted at its end: only rows it can prove it created, only where it may."""

    allowed: bool  # the embedded database, a database this command seeded, or --cleanup
    why: str  # the rule that allowed or refused it, in words for the report
    own_rows: int = 0  # bookings the run can prove it made (acknowledged ids, attributed phantoms)
    deleted: int = 0


class ScenarioFileInfo(_Model):
    path: str
    digest: str
    thresholds: dict[str, Any]
    review_targets: dict[str, Any]
    alert_rules: dict[str, Any]
    task_mix: dict[str, Any]
    noise_threshold: float = 0.05


class Counts(_Model):
    samples: int = Field(ge=0)  # rows in the samples file when it was closed
    locust: int | None = Field(default=None, ge=0)  # Locust's own count from its JSON stats
    service: int | None = Field(default=None, ge=0)  # requests the service handled (its /stats), None without it


class SealedFile(BaseModel):
    """One final file of a sealed samples folder (format 3, artifacts/sample_parts.py), as the manifest records
    it. Defined here, not there, so that reading a manifest never imports pyarrow (0.2 s on every command)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str  # relative to the run folder
    rows: int = Field(ge=0)
    sha256: str = Field(pattern="^[0-9a-f]{64}$")


class ScenarioEntry(_Model):
    definition: dict[str, Any]  # the Scenario as run (after --quick / duration factor)
    planned_s: float
    status: ScenarioStatus = "planned"
    started_at: str | None = None
    ended_at: str | None = None
    aborted: str | None = None  # why it ended early
    fault: str | None = None  # the part that failed when it ended early: service, database, load generator, ...
    integrity_skipped: str | None = None  # why the audit and reconciliation did not run after it (then NO-GO)
    # why they could not be measured at all (a profile without an audit block): not run, never a pass
    integrity_unmeasured: str | None = None
    # why Path B (notifications) has no figures for this scenario although the run had it on (interrupted, the
    # database gone); None when it was measured, or notifications were off
    notifications_unmeasured: str | None = None
    counts: Counts | None = None
    # relative to the run folder, and inside it: format 1/2 the CSV.gz file, format 3 the folder samples/<scenario>
    samples_file: str | None = None
    # format 3: every sealed file of that folder with its rows and sha256; None for format 1/2 and a killed run
    samples_files: list[SealedFile] | None = None
    # the samples file's digest when bookbench closed it (after Locust exited); None: runs before issue 24
    samples_sha256: str | None = Field(default=None, pattern="^[0-9a-f]{64}$")
    settle: dict[str, Any] | None = None
    audit: dict[str, Any] | None = None
    reconciliation: dict[str, Any] | None = None
    # what else the machine did during the load (pipeline/interference.py: outsiders' CPU, steal, load average,
    # memory pressure) and each Locust process's share of one core per second; None for runs before issue 23
    interference: dict[str, Any] | None = None
    generator_cpu: dict[str, Any] | None = None

    @field_validator("samples_file")
    @classmethod
    def _inside_run_folder(cls, value: str | None) -> str | None:
        if value is not None:
            _check_inside(value)
        return value

    @field_validator("samples_files")
    @classmethod
    def _files_inside_run_folder(cls, value: list[SealedFile] | None) -> list[SealedFile] | None:
        for sealed in value or []:
            _check_inside(sealed.path)
        return value


def _check_inside(value: str) -> None:
    # a manifest names files of its own folder: never one elsewhere on the machine for a reader to open
    path = PurePosixPath(value)
    if not value or path.is_absolute() or "\\" in value or ".." in path.parts or value.startswith("~"):
        raise ValueError(f"{value!r} is not a path inside the run folder")


class Manifest(_Model):
    format_version: int = MANIFEST_FORMAT_VERSION
    samples_format_version: int
    run_id: str
    status: RunStatus = "running"
    reason: str | None = None
    command: list[str] = Field(default_factory=list)
    git: dict[str, Any] = Field(default_factory=dict)
    packages: dict[str, str | None] = Field(default_factory=dict)
    machine: dict[str, Any] = Field(default_factory=dict)
    started_at: str = Field(default_factory=now_iso)
    ended_at: str | None = None
    quick: bool = False
    duration_factor: float = 1.0
    target: Target
    dataset: Dataset
    index_set: IndexSet
    scenario_file: ScenarioFileInfo
    scenarios: dict[str, ScenarioEntry]
    postgres: dict[str, str] | None = None
    queries: dict[str, Any] | None = None  # EXPLAIN summaries per statement (plans in explain/)
    write_cost: dict[str, Any] | None = None
    table_stats: dict[str, Any] | None = None  # pg_stat_user_tables before / after the load
    cleanup: Cleanup | None = None
    # clean-up steps that failed after the run had its outcome (one line each, details in logs/bookbench.log):
    # kept beside `reason`, never in its place
    cleanup_problems: list[str] = Field(default_factory=list)
    # how the database was treated: "embedded" (bookbench's own), "seeded" (this command seeded an empty
    # database), "reused" (bookbench's dataset, found as it was), "deployment" (a --target-url's database: read)
    database_role: str | None = None
    # a compare, calibrate or sweep run's place in its schedule (1-based round, 0-based position inside the round):
    # the analysis measures the position effect from these; None for a run outside rounds
    round: int | None = None
    position: int | None = None
    # why the run measured no notification (Path B) at all, in words for the pages: compare turned them off, a
    # --target-url run, notifications.enabled: false. None: they were on, or a run from before this field
    notifications_off: str | None = None


def notifications_off(target_run: bool, command: list[str], turned_off: bool, enabled: bool) -> str | None:
    """Why a run leaves Path B out (None: it measures it). `command` is the manifest's command line, whose
    second word names the command that started the run (compare, sweep, capacity and calibrate turn Path B off)."""
    if target_run:
        return ("not measured: a --target-url run (bookbench's notification dispatchers and fake SMS and calendar "
                "providers run only beside the reference service it starts)")
    if turned_off and "--no-notifications" in command:
        return "not measured: the run was started with --no-notifications"
    if turned_off:
        who = f"`bookbench {command[1]}`" if len(command) > 1 and not command[1].startswith("-") else "its command"
        return (f"not measured: {who} turns notifications off (it measures index sets; dispatchers "
                "draining between scenarios would only add CPU noise)")
    if not enabled:
        return "not measured: notifications.enabled is false in the scenario file"
    return None


def path_in(run_dir: Path) -> Path:
    return run_dir / "manifest.json"


def read(run_dir: Path) -> Manifest:
    return read_model(path_in(run_dir), Manifest, MANIFEST_FORMAT_VERSION)


def write(run_dir: Path, manifest: Manifest) -> None:
    # the one file that must be written however full the disk: it may use the run folder's space reserve
    write_model(path_in(run_dir), manifest, reserve=run_dir)
