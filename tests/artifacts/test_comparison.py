"""compare.json and the calibration store as models: keys that do not apply stay absent (never null), a file read
back is written again unchanged, and a single calibration.json reads as a store of one entry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bookbench.artifacts.comparison import (
    CalibratedInterference,
    Calibration,
    CalibrationStore,
    Comparison,
    Row,
    read_calibration_file,
    write_calibration_file,
)
from bookbench.errors import ArtifactError

INTERVAL = {"metric": "p95", "baseline": 100.0, "candidate": 5.0, "ratio": 0.05, "low": 0.04, "high": 0.06,
            "verdict": "improved", "noise_used": 0.05, "rounds": 2, "paired": True, "df": 3, "sd_pair": 0.1,
            "variance_source": "2 round(s) + default (uncalibrated)", "run_ratios": [0.05, 0.05], "n_baseline": 900,
            "n_candidate": 950, "blocks_baseline": 20, "blocks_candidate": 20}


def _comparison() -> dict[str, Any]:
    """compare.json as the compare stage writes it: a baseline row without intervals, a candidate with one
    downgraded interval and one cell that could not be compared, an open-model row whose P95 from the intended
    send time is null (present: the scenario is open) and a row of a set without figures of its own."""
    downgraded = {**INTERVAL, "position_adjusted": {"ratio": 0.9, "low": 0.8, "high": 1.1, "verdict": "no change"},
                  "downgraded": "regressed only with the run-order effect in it", "verdict": "within noise"}
    return {
        "format_version": 4, "created": "2025-01-01T00:00:00+00:00", "baseline": "none",
        "sets": ["none", "recommended"], "index_sets": {"none": "none", "recommended": "recommended"}, "repeat": 2,
        "paired": True, "noise_threshold": 0.05, "forced_despite": [], "runs": {"none": ["a", "b"],
                                                                              "recommended": ["c", "d"]},
        "run_status": {"none": ["completed"] * 2, "recommended": ["completed"] * 2},
        "scenarios": {
            "burst": {"none": {"requests": 900, "runs": 2, "vs_baseline": {}, "vs": {}, "p50": 50.0, "p95": 100.0,
                               "p99": 120.0, "throughput": 10.0},
                      "recommended": {"requests": 950, "runs": 2, "vs": {},
                                      "vs_baseline": {"p50": downgraded, "p95": INTERVAL,
                                                      "p99": {"error": "c: too few samples"}}}},
            "open": {"none": {"requests": 10, "runs": 2, "vs_baseline": {}, "vs": {}, "p95_from_intended": None,
                              "dropped": 3}}},
        "priors": {"burst": {"p95": "default (uncalibrated)"}}, "findings": {}, "best": "recommended",
        "headline": "Against none, ...",
        "order": {"design": "balanced", "positions": {"none": [0, 1], "recommended": [1, 0]}, "notes": []},
        "position_effect": {"burst": {"p95": {"metric": "p95", "separable": True, "ratio": 1.1, "low": 0.9,
                                              "high": 1.3, "detectable": False, "df": 3, "rounds": 2,
                                              "variance_source": "2 round(s)"}}},
        "calibration": None,
        "interference": {"runs": {"none": [{"measured": False}, {"measured": False}],
                                  "recommended": [{"measured": False}, {"measured": False}]},
                         "flagged_rounds": [], "notes": ["interference was not measured"]},
        "stopped": None,
    }


def test_a_comparison_read_back_is_written_again_unchanged() -> None:
    data = _comparison()
    model = Comparison.model_validate(data)
    assert model.model_dump(mode="json") == data
    recommended = model.scenarios["burst"]["recommended"]
    assert not recommended.has_figures() and recommended.figure("p95") is None
    assert model.scenarios["open"]["none"].open_model() and not model.scenarios["burst"]["none"].open_model()


def test_keys_that_do_not_apply_are_absent_not_null() -> None:
    row = Row(requests=0, runs=1, vs_baseline={}, vs={})
    assert row.model_dump() == {"requests": 0, "runs": 1, "vs_baseline": {}, "vs": {}}
    row.p95 = 12.0  # set by the builder once every run has the figure
    assert row.model_dump()["p95"] == 12.0 and "p50" not in row.model_dump()
    with pytest.raises(ValueError, match="unknown metric"):
        row.figure("p90")


def _calibration(interference: bool) -> Calibration:
    cal = Calibration.model_validate({
        "id": "cal-1", "created": "2025-01-01T00:00:00+00:00", "index_set": "recommended",
        "dataset_fingerprint": "d", "machine": {"cpus": 2}, "rounds": 3, "scenarios": {"burst": {
            "definition_digest": "x", "definition": {"stages": []}, "metrics": {"p95": {
                "sd_log": 0.05, "df": 3, "run_to_run_pct": 5.1, "pair_ratios": [1.0, 1.1, 0.9],
                "detectable_pct": {"1": 80.0, "3": 30.0}}}}}})
    if interference:
        cal.interference = CalibratedInterference(outside_cores=0.1, cpus=2, runs=6)
    return cal


def test_a_single_calibration_reads_as_a_store_and_an_old_store_reads_unchanged(tmp_path: Path) -> None:
    single = tmp_path / "calibration.json"
    write_calibration_file(single, _calibration(interference=True))
    store = read_calibration_file(single)
    assert [e.id for e in store.entries] == ["cal-1"] and store.entries[0].interference is not None
    # a store from before calibrations recorded their interference: no such key, and none written back
    old = tmp_path / "store" / "calibration.json"
    write_calibration_file(old, CalibrationStore(entries=[_calibration(interference=False)]))
    text = old.read_text()
    assert "interference" not in text
    write_calibration_file(old, read_calibration_file(old))
    assert json.loads(old.read_text()) == json.loads(text)


def test_a_calibration_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"format_version": 99, "entries": []}))
    with pytest.raises(ArtifactError, match="format_version 99"):
        read_calibration_file(path)
