"""The database under load, per scenario (issue 27): db/statements.json (what each statement cost in the measured
window, from pg_stat_statements) and db/waits.json (what the service's backends were waiting on, sampled from
pg_stat_activity, and the service's own per-request timing: pool wait and connection-held time).

Both files are written by pipeline/db_evidence.py after each scenario and read by the analysis (latency budget,
comparison). A part that could not be measured carries a `*_not_measured` reason ("not measured: ..."), never zeros.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from bookbench.artifacts.files import read_model, write_model

DB_EVIDENCE_FORMAT_VERSION = 1

# The categories a sampled backend falls into (db/waits.py maps pg_stat_activity's state / wait_event_type /
# wait_event onto them). "CPU" is an active backend with no wait event: running, or waiting on something PostgreSQL
# does not instrument.
WAIT_CATEGORIES = ("CPU", "Lock:advisory", "Lock:other", "LWLock", "IO:DataFileRead", "IO:other",
                   "Client:ClientRead", "idle in transaction", "other")


class Window(BaseModel):
    """The measured window (epoch seconds): from the scenario's first request plus its warm-up to the end of load."""
    model_config = ConfigDict(extra="forbid")
    start: float
    end: float
    # how the bounds were found, in words (e.g. "nearest snapshots: +0.4 s after the warm-up, 0.2 s before the end")
    note: str = ""


class StatementDelta(BaseModel):
    """One normalized statement's cost inside the window: the difference of two pg_stat_statements snapshots."""
    model_config = ConfigDict(extra="forbid")
    queryid: str  # pg_stat_statements.queryid (int64 as text)
    # the service's own statements get a readable name ("conflict check", "availability", "upcoming lookup",
    # "booking function", "cancel", "outbox claim", ...); anything else is "other"
    label: str
    own: bool  # one of the service's (or its profile's) known statements
    toplevel: bool | None  # False: run inside a function (the conflict check inside the booking function)
    query: str  # the normalized text, whitespace collapsed, cut at 500 characters
    calls: int
    total_exec_ms: float
    mean_exec_ms: float
    rows: int
    shared_blks_hit: int
    shared_blks_read: int
    shared_blks_dirtied: int
    temp_blks_read: int
    temp_blks_written: int
    wal_bytes: int | None  # None: this server's pg_stat_statements has no such column
    plans: int | None  # None: pg_stat_statements.track_planning is off
    total_plan_ms: float | None


class ScenarioStatements(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window: Window | None
    statements: list[StatementDelta]  # by total_exec_ms, largest first
    not_measured: str | None = None  # why there are no statements ("not measured: pg_stat_statements is not ...")
    # auto_explain's plans of statements slower than its threshold in the window, kept in
    # db/<scenario>_auto_explain.jsonl (at most 200): None when auto_explain was not read (a --dsn database)
    auto_explain_plans: int | None = None
    auto_explain_found: int | None = None  # how many the server logged in the window (more than kept: capped)


class StatementsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format_version: Literal[1] = 1
    source: str  # e.g. "pg_stat_statements 1.11, track = all, on the embedded server"
    scenarios: dict[str, ScenarioStatements]


class WaitShares(BaseModel):
    """Sampled pg_stat_activity of the service's backends (its application_name, in the run's database)."""
    model_config = ConfigDict(extra="forbid")
    hz: float  # the sampling rate achieved
    instants: int  # sampling instants inside the window
    observations: int  # backend observations that were not idle (what the shares divide)
    busy_backends_mean: float  # observations / instants: how many backends were busy on average
    counts: dict[str, int]  # WAIT_CATEGORIES -> observations
    shares: dict[str, float]  # WAIT_CATEGORIES -> share of observations (sums to 1 when observations > 0)
    # the raw wait events behind the categories, "type:event" -> observations (the 12 most frequent; counted per whole
    # second, so a window's edges are rounded to seconds): what "Lock:other" or "IO:other" actually was
    events: dict[str, int] = {}
    # why the window is not fully covered ("sampling ended 12.3 s into the window: ..."), empty when it is
    note: str = ""


class TimingBand(BaseModel):
    """Requests whose handler time falls in a percentile band (p50: 45th-55th, p95: 94th-96th), as means."""
    model_config = ConfigDict(extra="forbid")
    requests: int
    handler_ms: float  # from the service's first byte of the request to its response
    pool_wait_ms: float  # waiting for a pooled connection
    db_ms: float  # holding a connection: the database's execution, lock waits and the round trips


class ServiceTiming(BaseModel):
    """The reference service's per-request timing in the window (GET /stats/timing)."""
    model_config = ConfigDict(extra="forbid")
    requests: int
    # None (and bands empty) when no request ended in the window: nothing measured, never zero times
    handler_ms_mean: float | None
    pool_wait_ms_mean: float | None
    db_ms_mean: float | None
    bands: dict[str, TimingBand]  # "p50", "p95"
    # True when the service's ring of recent requests no longer held the window's start: the figures cover less
    complete: bool = True


class ScenarioWaits(BaseModel):
    model_config = ConfigDict(extra="forbid")
    window: Window | None
    waits: WaitShares | None
    waits_not_measured: str | None = None
    service: ServiceTiming | None
    service_not_measured: str | None = None


class WaitsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format_version: Literal[1] = 1
    scenarios: dict[str, ScenarioWaits]


def read_statements(path: Path) -> StatementsFile | None:
    """None when the run has no such file (a run from before issue 27, or one that never reached a scenario)."""
    return read_model(path, StatementsFile, DB_EVIDENCE_FORMAT_VERSION) if path.exists() else None


def read_waits(path: Path) -> WaitsFile | None:
    return read_model(path, WaitsFile, DB_EVIDENCE_FORMAT_VERSION) if path.exists() else None


def write_statements(path: Path, data: StatementsFile, reserve: Path | None = None) -> None:
    write_model(path, data, reserve)


def write_waits(path: Path, data: WaitsFile, reserve: Path | None = None) -> None:
    write_model(path, data, reserve)
