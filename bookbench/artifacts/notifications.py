"""notifications/<scenario>.json: what the outbox, the breaker and the backlog did during one scenario, and
notifications/<scenario>_received.jsonl: every message the providers accepted, with its receive time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bookbench.artifacts.files import read_model, write_model

NOTIFICATIONS_FORMAT_VERSION = 1


class OutboxRow(BaseModel):
    model_config = ConfigDict(extra="forbid")
    appointment_id: int
    channel: str
    kind: str
    dedup_key: str
    created_at: float
    status: str
    attempts: int
    sent_at: float | None
    conflict: bool
    last_error: str | None


class BreakerEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    t: float
    provider: str
    state: str


class NotificationFacts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format_version: int = NOTIFICATIONS_FORMAT_VERSION
    scenario: str
    dispatchers: int
    faults: dict[str, Any]
    load_start: float
    load_end: float
    drain_timeout_s: float
    drained_at: float | None  # None: still pending when the drain timeout ran out (or drain_stopped)
    # why the drain stopped waiting before the outbox was empty (a provider or every dispatcher gone); None: it
    # drained, or the timeout ran out
    drain_stopped: str | None = None
    # the parts of the notification stack that had exited by the end of the drain, with their exit codes (a
    # dispatcher killed mid-load: its claimed rows were left to the others)
    exited: dict[str, int] = Field(default_factory=dict)
    backlog: list[tuple[float, int]]  # (epoch s, pending notifications of this scenario)
    breaker: list[BreakerEvent]
    outbox: list[OutboxRow]


def received_file(folder: Path, provider: str) -> Path:
    """Where a fake provider (sms, calendar) appends what it accepted, in a run's notifications/ folder."""
    return folder / f"received_{provider}.jsonl"


def write(path: Path, facts: NotificationFacts) -> None:
    write_model(path, facts)


def read(path: Path) -> NotificationFacts:
    return read_model(path, NotificationFacts, NOTIFICATIONS_FORMAT_VERSION)


def read_received(path: Path) -> list[dict[str, Any]]:
    """The providers' records; a line cut short by a killed provider is skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
