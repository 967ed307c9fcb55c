"""db/<scenario>_soak.jsonl: what a long run reveals, probed every few seconds beside the load (issue 28 item 3).

One JSON object per line, appended as each probe is taken: a run killed mid-scenario keeps every whole line, and a
reader skips a last line cut short. A part the probe could not read is absent from its fields and named in
`not_measured` ("rss": "not measured: the service is not ours (--target-url)"), never written as 0.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bookbench.artifacts.files import append_text

SOAK_FORMAT_VERSION = 1
# the tables whose growth a soak watches: the bookings, the patients they belong to, and the notifications outbox
# (bookbench/sql/schema/001_tables.sql)
SOAK_TABLES = ("appointments", "contacts", "notification_outbox")

log = logging.getLogger(__name__)


class TableProbe(BaseModel):
    """One table at one instant: sizes (pg_total_relation_size, pg_relation_size, pg_indexes_size) and the
    statistics collector's counters (pg_stat_user_tables). `last_autovacuum`: epoch s, None when never."""
    model_config = ConfigDict(extra="forbid")
    total_bytes: int
    table_bytes: int
    index_bytes: int
    n_live_tup: int | None = None
    n_dead_tup: int | None = None
    autovacuum_count: int | None = None
    autoanalyze_count: int | None = None
    last_autovacuum: float | None = None


class Probe(BaseModel):
    """One probe. `rss_bytes`: resident memory of the service's processes (its uvicorn process and children),
    `service_processes` of them; `connections`: the run database's backends by state (the probe's own excluded;
    "hidden": backends of roles whose state this role may not read); `outbox_pending`: notifications not yet
    delivered, whole table."""
    model_config = ConfigDict(extra="forbid")
    v: int = SOAK_FORMAT_VERSION
    t: float  # epoch s
    rss_bytes: int | None = None
    service_processes: int | None = None
    connections: dict[str, int] | None = None
    tables: dict[str, TableProbe] | None = None
    outbox_pending: int | None = None
    not_measured: dict[str, str] = Field(default_factory=dict)  # part ("rss", "connections", ...) -> why


def soak_file(run_dir: Path, scenario: str) -> Path:
    """The scenario's probe file inside the run folder (beside its other database evidence in db/)."""
    return run_dir / "db" / f"{scenario}_soak.jsonl"


def append(path: Path, probe: Probe) -> None:
    """One line per probe, appended (a soak writes for hours: never rewrite the whole file)."""
    append_text(path, probe.model_dump_json(exclude_none=True) + "\n")


def read(path: Path) -> list[Probe]:
    """Every whole probe in the file, in time order; [] when there is none. A line that does not parse (the last
    one cut by a kill, or damage) is skipped and logged: the probes around it still stand."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return []
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            probe = Probe.model_validate(json.loads(line))
        except (ValueError, ValidationError):
            log.warning("%s line %d: not a whole probe, skipped", path, number)
            continue
        if probe.v > SOAK_FORMAT_VERSION:
            log.warning("%s line %d: format %d is newer than this bookbench reads", path, number, probe.v)
            continue
        out.append(probe)
    return sorted(out, key=lambda p: p.t)
