"""config/<scenario>.json: what one scenario's Locust processes are given (RunConfig), its one writer and reader.

The pipeline writes it; the locustfile reads it (BOOKBENCH_RUN_CONFIG names the file), and the remote-worker plan
carries it without the master's paths. It never holds a secret: the dataset's key secret reaches Locust through
its environment, and credentials are read again where they live.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bookbench.artifacts.files import read_json, validate, write_model
from bookbench.config.dataset import DatasetParams
from bookbench.config.scenarios import DatasetSpec, Scenario, TaskMix
from bookbench.errors import ArtifactError

RUN_CONFIG_FORMAT_VERSION = 1
# the master's own files: a remote worker's plan carries none of them
_PATH_FIELDS = ("samples_path", "samples_dir", "progress_path", "bookings_path", "dropped_path", "attempts_path",
                "failure_path")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RunDataset(DatasetSpec):
    """The dataset's layout, which the load draws its ids from, and its calendar as the manifest records it (the
    Locust process reads only the layout)."""

    past_days: int | None = None
    future_days: int | None = None
    anchor: str | None = None  # ISO date

    def layout(self) -> DatasetParams:
        """The layout as DatasetParams (its calendar left at the defaults: the load needs only the ids)."""
        return DatasetParams(orgs=self.orgs, providers_per_org=self.providers_per_org, contacts=self.contacts,
                             appointments=self.appointments, seed=self.seed)


class TenantIds(_Strict):
    """One tenant's ids as the orchestrator resolved them (a SQL or call pool only it can read)."""

    id: int | str
    contacts: list[int | str]
    providers: list[int | str]


class TargetRef(_Strict):
    """The profile the load talks through (a file path, or a built-in name), and its tenants when resolved."""

    profile: str | None = None  # None: the reference service's profile for the task mix's protocol
    tenants: list[TenantIds] | None = None


class RemoteJoin(_Strict):
    """Set on a remote worker: the master it may join, checked before it connects (see load.remote)."""

    plan_key: str
    master_host: str
    master_port: int


class RunConfig(_Strict):
    """Everything a Locust process needs for one scenario; no secret, and paths only on the master's machine."""

    # hand-written configs (tests, benchmarks, exploration) may leave it out; a file that names another version
    # is refused
    format_version: int = RUN_CONFIG_FORMAT_VERSION
    scenario_name: str = ""
    scenario: Scenario | None = None  # None: Locust's own -u/-r/-t drive the users (exploration)
    task_mix: TaskMix
    dataset: RunDataset = RunDataset()
    target: TargetRef = TargetRef()
    # Locust processes that generate load (1, or the workers): an open model's rate is shared between them
    processes: int = Field(default=1, ge=1)
    # samples format 3: the folder where every load process writes its own parts (what bookbench writes); a
    # hand-written config may name samples_path instead, a format-2 CSV.gz file (the recording-cost benchmark's
    # "before")
    samples_dir: str | None = None
    samples_path: str | None = None
    progress_path: str | None = None
    bookings_path: str | None = None
    dropped_path: str | None = None
    attempts_path: str | None = None
    failure_path: str | None = None
    remote: RemoteJoin | None = None

    def without_paths(self) -> RunConfig:
        """This config for another machine: none of this machine's file paths."""
        return self.model_copy(update=dict.fromkeys(_PATH_FIELDS))


def parse(data: Any, where: str) -> RunConfig:
    """A RunConfig from decoded JSON; ArtifactError naming `where` and the first bad field otherwise."""
    if isinstance(data, dict) and "format_version" not in data:
        raise ArtifactError(f"{where}: format_version: missing (a run config written by bookbench always has one)")
    if isinstance(data, dict) and data["format_version"] != RUN_CONFIG_FORMAT_VERSION:
        raise ArtifactError(f"{where} has format_version {data.get('format_version')!r}; this bookbench reads "
                            f"version {RUN_CONFIG_FORMAT_VERSION} (the run and its Locust processes must be one "
                            "bookbench version)")
    return validate(where, data, RunConfig)


def read(path: Path) -> RunConfig:
    return parse(read_json(path), str(path))


def write(path: Path, config: RunConfig) -> None:
    write_model(path, config)
