"""summary.json: the analysis of a run folder's samples (exact percentiles, throughput, series for the charts).

Validated against the model on write and on read; readers get plain dicts (the pages index into them), but only
after the model has checked every field they rely on.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bookbench.artifacts.files import read_model, write_model

SUMMARY_FORMAT_VERSION = 2  # 2: errors_by_message always present, validated model


class Latency(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mean: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    p999: float | None
    max: float | None


class Counts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests: int = Field(ge=0)
    failures: int = Field(ge=0)
    error_rate: float
    availability: float | None
    throughput_rps: float
    latency_ms: Latency


class ScenarioSummary(Counts):
    samples_total: int = Field(ge=0)
    warmup_excluded: int = Field(ge=0)
    warmup_s: float = 0.0
    window_s: float
    endpoints: dict[str, Counts]
    # failures per message with ids, numbers and addresses replaced (`appointment <n> not found`)
    errors_by_message: dict[str, int] = Field(default_factory=dict)
    error_examples: dict[str, str] = Field(default_factory=dict)  # pattern -> its most frequent real message
    timeseries: list[dict[str, Any]]
    distribution: dict[str, Any]
    noise: list[str]
    batches: dict[str, Any] | None
    # Path B (analysis/notifications.py); absent when the run did not measure notifications
    notifications: dict[str, Any] | None = None
    # open-model scenarios (arrival_rate stages): latency from the intended send time, lateness, dropped arrivals
    open_model: dict[str, Any] | None = None
    # the load generator's own CPU per Locust process and open-model send lateness (analysis/summarize.py), and
    # whether it was the bottleneck: then the latencies measure the generator, not the service
    generator: dict[str, Any] | None = None
    generator_saturated: bool = False
    generator_saturated_reason: str | None = None
    # the samples file checked against the manifest's row count and sha256: path, status (verified, not verified,
    # damaged), detail; None for a scenario that wrote none (issue 24)
    samples_file: dict[str, Any] | None = None
    # the longest time without a completed request inside the load window, and the gaps of 1 s or more
    stall: dict[str, Any] | None = None


class Summary(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format_version: int = SUMMARY_FORMAT_VERSION
    run_id: str
    method: str
    scenarios: dict[str, ScenarioSummary]


def _clean(value: Any) -> Any:
    """NaN and infinity are not JSON: they are written as null (no figure)."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def write(run_dir: Path, summary: dict[str, Any]) -> Path:
    path = run_dir / "summary.json"
    write_model(path, Summary.model_validate(_clean(summary)))
    return path


def read(run_dir: Path) -> dict[str, Any]:
    return read_model(run_dir / "summary.json", Summary, SUMMARY_FORMAT_VERSION).model_dump()
