"""A stall that recovers is a verdict of its own (issue 24): a synthetic run with 15.1 s in which no request
completed fails on `max_stall_s` with the span, whatever its percentiles say; the per-second series has the empty
seconds (0 req/s) instead of bridging them; only the load window counts (not the warm-up, not after the plan)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bookbench.analysis import judge
from bookbench.analysis import summarize as analysis
from bookbench.artifacts import samples
from bookbench.artifacts.manifest import Manifest
from bookbench.artifacts.samples import Sample, SampleWriter
from bookbench.artifacts.summary import ScenarioSummary
from bookbench.config.scenarios import Thresholds

KNOWN = Path(__file__).resolve().parents[1] / "data" / "known_run"
T0 = 1_700_000_000.0
PLANNED_S = 60.0


def _row(start: float, latency_ms: float) -> Sample:
    return (T0 + start, latency_ms, "checkAvailability", "GET", 200, 1, "", 100, 3, "local", None)


def _run(tmp_path: Path, gap: tuple[float, float] | None, thresholds: dict[str, Any] | None = None) -> Path:
    """A completed 60 s scenario (warm-up 2 s): a 10 ms request every 0.2 s, and none completing inside `gap`
    (seconds after the first request) but one stuck request that starts when the gap does and completes when it
    ends, as under a stopped service."""
    run = tmp_path / "run"
    shutil.copytree(KNOWN, run)
    (run / "samples" / "known.csv.gz").unlink()
    rows = []
    for k in range(int(PLANNED_S / 0.2)):
        start = k * 0.2
        end = start + 0.01
        if gap is None or not gap[0] <= end <= gap[1]:
            rows.append(_row(start, 10.0))
    if gap is not None:
        rows.append(_row(gap[0] - 0.1, 100.0))  # the last completion before it
        rows.append(_row(gap[0], (gap[1] - gap[0]) * 1000))  # stuck for the whole gap
    writer = SampleWriter(run / "samples" / "known.csv.gz")
    writer.extend(sorted(rows))
    writer.flush()
    data = json.loads((run / "manifest.json").read_text())
    entry = data["scenarios"]["known"]
    entry.update(status="completed", planned_s=PLANNED_S)
    entry["definition"].update(warmup_s=2.0, batches=None, stages=[{"duration_s": PLANNED_S, "users": 3}])
    entry["counts"]["samples"], entry["samples_sha256"] = samples.seal(run / "samples" / "known.csv.gz")  # type: ignore[misc]
    data["scenario_file"]["thresholds"] = thresholds or {"global": {"p95_ms": 500}}
    data["scenario_file"]["review_targets"] = {}
    (run / "manifest.json").write_text(json.dumps(data))
    return run


def _verdict(run: Path) -> tuple[judge.Verdict | None, ScenarioSummary]:
    summary = analysis.analyse_run(run)
    man = Manifest.model_validate(json.loads((run / "manifest.json").read_text()))
    j = judge.judge(man, summary, None)
    found = [v for v in j.verdicts if v.metric == "max_stall_s"]
    assert len(found) <= 1
    return (found[0] if found else None), summary.scenarios["known"]


def test_a_15_s_stall_is_a_verdict_with_its_span_and_zero_seconds_in_the_series(tmp_path: Path) -> None:
    v, sc = _verdict(_run(tmp_path, (17.0, 32.1)))
    assert v is not None and v.status == "fail" and v.kind == "threshold"
    assert v.detail == "no request completed for 15.1 s at 00:17-00:32", v.detail
    assert v.value == pytest.approx(15.1, abs=1e-6) and v.limit == 5.0  # the default limit
    assert judge.describe(v) == "known max_stall_s: no request completed for 15.1 s at 00:17-00:32"
    # the percentiles alone would pass: 1 slow request in 290
    assert (sc.latency_ms.p95 or 0) < 500
    series = {p.t: p for p in sc.timeseries}
    assert list(series) == list(range(len(series)))  # every second, none skipped
    empty = [t for t, p in series.items() if p.rps == 0]
    assert empty == list(range(18, 32)), empty  # 17.0 and 32.1 fall in seconds 17 and 32
    assert series[20].p95 is None and series[20].users == 3  # no latency that second; users still there
    assert any("throughput unstable" in n for n in sc.noise)  # the stability check sees the hole


def test_a_short_pause_passes_and_a_clean_run_has_no_stall(tmp_path: Path) -> None:
    v, _ = _verdict(_run(tmp_path / "a", (20.0, 23.0)))
    assert v is not None and v.status == "pass" and v.value == pytest.approx(3.0, abs=1e-6)
    v, sc = _verdict(_run(tmp_path / "b", None))
    assert v is not None and v.status == "pass" and v.value is not None and v.value < 0.3
    assert all(p.rps > 0 for p in sc.timeseries)


def test_only_the_load_window_counts(tmp_path: Path) -> None:
    # a hole in the warm-up is not judged ...
    v, sc = _verdict(_run(tmp_path / "warmup", (0.1, 1.9)))
    assert v is not None and v.status == "pass", v
    # ... nor is the time after the planned end, but a stall running into the planned end is
    v, sc = _verdict(_run(tmp_path / "end", (50.0, 66.0)))
    assert v is not None and v.status == "fail"
    assert sc.stall is not None and sc.stall.to_s == PLANNED_S and v.value == pytest.approx(10.0, abs=1e-6)
    assert v.detail == "no request completed for 10.0 s at 00:50-01:00"


def test_the_limit_is_a_threshold_key_and_null_turns_it_off(tmp_path: Path) -> None:
    gap = (17.0, 32.1)
    v, _ = _verdict(_run(tmp_path / "loose", gap, {"global": {"max_stall_s": 20}}))
    assert v is not None and v.status == "pass" and v.limit == 20
    v, _ = _verdict(_run(tmp_path / "off", gap, {"global": {"max_stall_s": None}}))
    assert v is None
    v, _ = _verdict(_run(tmp_path / "scenario", gap, {"global": {"max_stall_s": 30},
                                                       "per_scenario": {"known": {"max_stall_s": 10}}}))
    assert v is not None and v.status == "fail" and v.limit == 10


def test_the_default_allows_the_quiet_a_healthy_run_has() -> None:
    th = Thresholds()
    closed = {"stages": [{"duration_s": 60, "users": 1}]}
    assert th.stall_default("s", closed, 0.0) == 5.0
    assert th.stall_default("s", closed, 20.0) == 25.0  # a caller may think for 20 s between calls
    assert th.stall_default("s", {"stages": [{"duration_s": 60, "arrival_rate": 40}]}, 0.0) == 5.0
    assert th.stall_default("s", {"stages": [{"duration_s": 60, "arrival_rate": 0.5}]}, 0.0) == 20.0
    assert Thresholds.model_validate({"global": {"max_stall_s": 8}}).stall_default("s", closed, 0.0) is None
