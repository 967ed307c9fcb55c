"""compare.json (a comparison folder) and the calibration store: the files `compare` and `calibrate` leave."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from bookbench.artifacts.files import check_version, read_json, read_model, write_json, write_model

# 2: rounds, paired run-to-run intervals, labels; 3: run order and position effect; 4: run_status, stopped
COMPARE_FORMAT_VERSION = 4
CALIBRATION_FORMAT_VERSION = 1


class Comparison(BaseModel):
    """compare.json; `scenarios[name][label]` holds each variant's figures and its interval against the baseline
    (see analysis/comparison.py for the row layout)."""

    model_config = ConfigDict(extra="forbid")
    format_version: int = COMPARE_FORMAT_VERSION
    created: str
    baseline: str
    sets: list[str]
    index_sets: dict[str, str]
    repeat: int
    paired: bool
    noise_threshold: float
    forced_despite: list[str]
    runs: dict[str, list[str]]
    # each compared run's status in words beside `runs` ("completed", "interrupted (stopped by SIGTERM)"); a run
    # that did not complete is compared only with --force and never makes its set the best
    run_status: dict[str, list[str]]
    scenarios: dict[str, dict[str, Any]]
    priors: dict[str, dict[str, str]]
    findings: dict[str, Any]
    best: str | None
    headline: str
    # the rounds' run order (design, each run's position) and notes in words; position_effect[scenario][metric]:
    # the later-vs-first ratio with its interval (analysis.inference.PositionEffect)
    order: dict[str, Any]
    position_effect: dict[str, dict[str, Any]]
    calibration: dict[str, Any] | None = None  # calibrate only: the spread its A/A rounds measured
    # other processes' cores per run, the rounds that stood out, and against the calibration's (notes in words)
    interference: dict[str, Any] | None = None
    # a compare that stopped before its last round (interrupted or a run failed): status, round, rounds_compared,
    # reason, summary ("interrupted in round 2: rounds 1-1 compared") and the runs it made but did not compare
    stopped: dict[str, Any] | None = None


def write_comparison(folder: Path, result: dict[str, Any]) -> Path:
    path = folder / "compare.json"
    write_model(path, Comparison.model_validate(result))
    return path


def read_comparison(folder: Path) -> dict[str, Any]:
    return read_model(folder / "compare.json", Comparison, COMPARE_FORMAT_VERSION).model_dump()


def write_calibration_file(path: Path, data: dict[str, Any]) -> None:
    """One calibration (a calibrate folder's calibration.json) or the whole store."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, data)


def read_calibration_file(path: Path) -> dict[str, Any]:
    """The store (format_version, entries); a single calibration.json is read as a store of one entry."""
    data = check_version(path, read_json(path), CALIBRATION_FORMAT_VERSION)
    if "entries" not in data:
        data = {"format_version": CALIBRATION_FORMAT_VERSION, "entries": [data]}
    return data
