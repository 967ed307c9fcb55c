"""Known answers for the analysis and the verdicts, from the fixture run in tests/data/known_run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from bookbench.analysis import judge
from bookbench.analysis import summarize as analysis
from bookbench.artifacts import manifest as manifest_file
from bookbench.artifacts import summary as summary_file
from bookbench.artifacts.samples import read_rows
from bookbench.artifacts.summary import Summary
from bookbench.config.scenarios import Thresholds
from bookbench.errors import ArtifactError

KNOWN = Path(__file__).resolve().parents[1] / "data" / "known_run"


@pytest.fixture(scope="module")
def summary() -> Summary:
    return analysis.analyse_run(KNOWN)


def test_warm_up_is_excluded_and_counts_are_exact(summary: Summary) -> None:
    s = summary.scenarios["known"]
    assert s.samples_total == 1010 and s.warmup_excluded == 10 and s.requests == 1000
    assert s.failures == 20 and s.error_rate == pytest.approx(0.02)
    assert s.availability == pytest.approx(0.98)


def test_percentiles_are_numpy_linear(summary: Summary) -> None:
    lat = summary.scenarios["known"].latency_ms
    # latencies 1..100 ms, each ten times: hand-computed linear-interpolation answers
    assert lat.p50 == pytest.approx(50.5) and lat.p95 == pytest.approx(95.05)
    assert lat.p99 == pytest.approx(99.01) and lat.mean == pytest.approx(50.5) and lat.max == 100
    # and the same as one line of numpy over the raw file, warm-up rows dropped
    rows = read_rows(KNOWN / "samples" / "known.csv.gz")
    t0 = min(float(r["ts"]) for r in rows)
    steady = np.array([float(r["latency_ms"]) for r in rows if float(r["ts"]) >= t0 + 2.0])
    assert lat.p999 == np.percentile(steady, 99.9)


def test_throughput_is_requests_over_the_steady_window(summary: Summary) -> None:
    s = summary.scenarios["known"]
    assert s.window_s == pytest.approx(100.0)
    assert s.throughput_rps == pytest.approx(10.0)


def test_batches_and_no_drift(summary: Summary) -> None:
    b = summary.scenarios["known"].batches
    assert b is not None
    assert len(b.rows) == 10 and sum(r.requests for r in b.rows) == 1000
    assert all(99 <= r.requests <= 101 for r in b.rows)
    assert not b.drift.p95.flagged and not b.drift.throughput.flagged


def test_drift_is_flagged_when_latency_climbs() -> None:
    trend = analysis._trend(np.array([100, 110, 125, 140, 160, 180, 200, 230, 260, 300], dtype=float))
    assert trend.flagged and trend.relative_slope is not None and trend.relative_slope > 0.05


def test_per_endpoint_and_errors_by_message(summary: Summary) -> None:
    s = summary.scenarios["known"]
    assert set(s.endpoints) == {"bookClinicAppointment", "lookupUpcomingAppointment"}
    assert sum(e.requests for e in s.endpoints.values()) == 1000
    assert s.errors_by_message == {"HTTP 503: database_unavailable": 20}


def test_noise_flags_small_samples() -> None:
    import pandas as pd

    df = pd.DataFrame({"ts": [1.0, 1.1, 1.2], "latency_ms": [5.0, 6.0, 7.0], "name": ["a"] * 3, "method": ["GET"] * 3,
                       "status": [200] * 3, "ok": [1] * 3, "error": [""] * 3, "bytes": [1] * 3, "users": [1] * 3,
                       "worker": ["local"] * 3})
    df["end"] = df["ts"] + df["latency_ms"] / 1000
    notes = analysis.analyse_scenario(df, 0, None).noise
    assert any("p99 from 3 samples" in n for n in notes)


def test_summary_round_trip(tmp_path: Path, summary: Summary) -> None:
    run = tmp_path / "run"
    shutil.copytree(KNOWN, run)
    summary_file.write(run, summary)
    assert summary_file.read(run) == summary
    data = json.loads((run / "summary.json").read_text())
    assert set(data["scenarios"]["known"]) >= {"requests", "failures", "error_rate", "throughput_rps", "latency_ms"}
    assert set(data["scenarios"]["known"]["latency_ms"]) == {"mean", "p50", "p95", "p99", "p999", "max"}
    data["format_version"] = 99
    (run / "summary.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="format_version 99"):
        summary_file.read(run)


def test_thresholds_and_alert_rules(summary: Summary) -> None:
    manifest = manifest_file.read(KNOWN)
    j = judge.judge(manifest, summary, None)
    vs = {(v.kind, v.metric): v for v in j.verdicts if v.scenario == "known"}
    assert vs[("threshold", "p95_ms")].status == "fail" and vs[("threshold", "p95_ms")].limit == 90
    assert vs[("threshold", "error_rate")].status == "fail"
    assert vs[("threshold", "throughput_rps")].status == "pass"
    assert vs[("alert", "p95_ms")].status == "pass"
    assert vs[("alert", "error_rate")].status == "fail"  # 2 % > the 1 % rule
    assert j.decision == "NO-GO"


def test_throughput_drop_needs_a_baseline(summary: Summary) -> None:
    manifest = manifest_file.read(KNOWN)
    baseline = summary.model_copy(deep=True)
    baseline.scenarios["known"].throughput_rps = 20.0
    drop = [v for v in judge.judge(manifest, summary, None, baseline).verdicts if v.metric == "throughput_drop"]
    assert drop and drop[0].value == pytest.approx(0.5) and drop[0].status == "fail"
    assert not [v for v in judge.judge(manifest, summary, None).verdicts if v.metric == "throughput_drop"]


def test_per_scenario_null_removes_a_global_limit() -> None:
    th = Thresholds.model_validate({"global": {"p95_ms": 500, "throughput_rps": 30},
                                    "per_scenario": {"single": {"throughput_rps": None, "p95_ms": 300}}})
    assert judge.effective_limits(th, "single") == {"p95_ms": 300}
    assert judge.effective_limits(th, "burst") == {"p95_ms": 500, "throughput_rps": 30}
