"""Interference in a comparison: each run's outside load, the rounds that stood out, and against calibration."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from bookbench.analysis import machine
from bookbench.artifacts import manifest as manifest_file
from bookbench.artifacts.comparison import CalibratedInterference, Interference

KNOWN = Path(__file__).resolve().parents[1] / "data" / "known_run"


def _run(tmp: Path, name: str, outside_cores: float | None) -> Path:
    run = tmp / name
    shutil.copytree(KNOWN, run)
    m = json.loads((run / "manifest.json").read_text())
    for entry in m["scenarios"].values():
        entry["interference"] = None if outside_cores is None else {
            "samples": 10, "interval_s": 1.0, "cpus": 2, "outside_cores": outside_cores,
            "outside_cpu_share": outside_cores / 2, "outside_cpu_s": outside_cores * 10, "own_cores": 1.0,
            "own_cpu_s": 10.0, "steal_share": 0.0, "load_avg_mean": 1.0 + outside_cores, "load_avg_max": 2.0,
            "mem_pressure_avg10_max": None, "cpu_pressure_avg10_max": None, "available_mb_min": 1000}
    (run / "manifest.json").write_text(json.dumps(m))
    return run


def interference(variants: dict[str, list[Path]], calibrated: CalibratedInterference | None) -> Interference:
    return machine.interference({label: [manifest_file.read(d) for d in runs] for label, runs in variants.items()},
                                calibrated)


def test_a_round_under_strongly_more_interference_is_flagged(tmp_path: Path) -> None:
    variants = {"a": [_run(tmp_path, f"a{i}", c) for i, c in enumerate((0.05, 0.04, 0.06, 0.05))],
                "b": [_run(tmp_path, f"b{i}", c) for i, c in enumerate((0.05, 1.6, 0.05, 0.04))]}
    out = interference(variants, None)
    assert out.flagged_rounds == [2] and "round 2: the b run" in out.notes[0]
    assert out.runs["b"][1].outside_cores == 1.6


def test_more_interference_than_the_calibration_weakens_the_verdicts_in_words(tmp_path: Path) -> None:
    variants = {"a": [_run(tmp_path, f"a{i}", 0.9) for i in range(2)],
                "b": [_run(tmp_path, f"b{i}", 1.0) for i in range(2)]}
    out = interference(variants, CalibratedInterference(outside_cores=0.05, cpus=2, id="cal-1", runs=8))
    assert out.flagged_rounds == []
    assert any("much more interference" in n and "cal-1" in n for n in out.notes), out.notes
    quiet = interference(variants, CalibratedInterference(outside_cores=0.9, cpus=2, id="cal-2", runs=8))
    assert not any("much more interference" in n for n in quiet.notes)


def test_runs_from_before_the_sampler_say_not_measured(tmp_path: Path) -> None:
    out = interference({"a": [_run(tmp_path, "a", None)], "b": [_run(tmp_path, "b", None)]}, None)
    assert out.notes == ["interference was not measured (runs from before the sampler)"]
