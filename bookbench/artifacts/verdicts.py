"""verdicts.json and verdicts.junit.xml: the judge's verdicts and decision, written for CI (display only)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict

from bookbench.artifacts import junit
from bookbench.artifacts.files import read_model, write_model

VERDICTS_FORMAT_VERSION = 2
Status = Literal["pass", "fail", "no data", "not run", "exempt"]


class VerdictRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str
    scenario: str
    metric: str
    value: float | None
    limit: float | None
    status: Status
    samples: int
    detail: str = ""
    text: str  # the verdict in words, as the pages show it


class VerdictsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format_version: int = VERDICTS_FORMAT_VERSION
    decision: Literal["GO", "NO-GO", "INCOMPLETE"]
    go: bool
    caveats: list[str]
    verdicts: list[VerdictRecord]


def write(run_dir: Path, data: VerdictsFile) -> None:
    write_model(run_dir / "verdicts.json", data)
    outcome: dict[str, Literal["passed", "failed", "skipped"]] = {
        "fail": "failed", "no data": "failed", "not run": "skipped", "exempt": "skipped", "pass": "passed"}
    junit.write(run_dir / "verdicts.junit.xml", "bookbench verdicts", [
        junit.Case("bookbench verdicts", f"bookbench.{v.kind}.{v.scenario}", v.metric, outcome[v.status],
                   f"{v.text}: {v.status}") for v in data.verdicts])


def read(run_dir: Path) -> VerdictsFile:
    return read_model(run_dir / "verdicts.json", VerdictsFile, VERDICTS_FORMAT_VERSION)
