"""A synthetic position effect (issue 23, Done when #1): the second run of every round is 30 % slower and the two
sets are identical. With a fixed order the paired analysis calls the A/A regressed; with alternating rounds and the
position-effect analysis no verdict is false, and the effect is reported with a size near 30 %."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest

from bookbench.analysis import calibration, comparison
from bookbench.analysis import summarize as analysis
from bookbench.analysis.inference import PlacedFigure, RunFigure, position_effect
from bookbench.artifacts import summary as summary_file
from bookbench.artifacts.comparison import (
    CalibratedScenario,
    Calibration,
    CalibrationStore,
    Comparison,
    Interval,
    MetricNoise,
)
from bookbench.pipeline.schedule import schedule
from bookbench.report import render_compare

KNOWN = Path(__file__).resolve().parents[1] / "data" / "known_run"
SLOWER = 1.3  # the second run of each round
RUN_SD = 0.03  # one run's own level, sd of its log: a quiet machine
SECONDS, RATE, MEDIAN_MS = 40, 40.0, 20.0
CLAIMS = ("improved", "regressed")


def _samples(path: Path, rng: np.random.Generator, level: float, t0: float) -> None:
    """A closed-loop run at `level` (latency x level, rate / level): Poisson arrivals, lognormal latency."""
    rows = ["ts,latency_ms,name,method,status,ok,error,bytes,users,worker"]
    for second in range(SECONDS):
        n = int(rng.poisson(RATE / level))
        for t in np.sort(rng.uniform(0, 1, n)):
            latency = MEDIAN_MS * level * float(rng.lognormal(0, 0.4))
            rows.append(f"{t0 + second + t:.4f},{latency:.3f},bookClinicAppointment,POST,200,1,,60,5,local")
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(rows) + "\n")


def _run(root: Path, name: str, rng: np.random.Generator, round_no: int, position: int) -> Path:
    run = root / name
    shutil.copytree(KNOWN, run)
    manifest: dict[str, Any] = json.loads((run / "manifest.json").read_text())
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=10 * round_no + 3 * position)
    manifest.update(run_id=name, started_at=start.isoformat(), round=round_no + 1, position=position)
    manifest["index_set"]["name"] = "recommended"
    manifest["scenarios"]["known"]["definition"]["stages"][0]["duration_s"] = SECONDS
    (run / "manifest.json").write_text(json.dumps(manifest))
    level = math.exp(rng.normal(0, RUN_SD)) * (SLOWER if position > 0 else 1.0)
    _samples(run / "samples" / "known.csv.gz", rng, level, start.timestamp())
    summary_file.write(run, analysis.analyse_run(run))
    return run


def _aa(root: Path, rounds: int, order: Literal["fixed", "balanced", "custom"], seed: int = 7) -> dict[str, list[Path]]:
    """An A/A of `rounds` rounds run in the given order (0 = the first label): two labels, one set; "custom" is
    the unbalanced A B, A B, A B, B A."""
    rng = np.random.default_rng(seed)
    variants: dict[str, list[Path]] = {"recommended": [], "recommended#2": []}
    rows = [[0, 1]] * 3 + [[1, 0]] if order == "custom" else schedule(2, rounds, order)
    for r, row in enumerate(rows):
        for position, v in enumerate(row):
            label = list(variants)[v]
            variants[label].append(_run(root, f"{order}-r{r}-{v}", rng, r, position))
    return variants


def _verdicts(result: Comparison) -> dict[str, str]:
    row = result.scenarios["known"]["recommended#2"].vs_baseline
    return {m: ci.verdict for m, ci in row.items() if isinstance(ci, Interval)}


def test_fixed_order_turns_the_position_effect_into_a_false_verdict(tmp_path: Path) -> None:
    result = comparison.build(_aa(tmp_path, 4, "fixed"), 0.05, n_boot=100)
    verdicts = _verdicts(result)
    # the identical set "regressed": the slower second run is attributed to the set that always ran second
    assert verdicts["p50"] == verdicts["p95"] == verdicts["throughput"] == "regressed"
    assert result.order.design == "fixed" and "same order" in result.order.notes[0]
    assert not any(e.separable for e in result.position_effect["known"].values())


def test_balanced_order_and_the_position_analysis_give_no_false_verdict(tmp_path: Path) -> None:
    result = comparison.build(_aa(tmp_path, 4, "balanced"), 0.05, n_boot=100)
    assert result.order.design == "balanced"
    assert not [m for m, v in _verdicts(result).items() if v in CLAIMS], _verdicts(result)
    effect = result.position_effect["known"]
    for metric in ("p50", "p95"):
        assert effect[metric].detectable and 1.2 < effect[metric].ratio < 1.4, effect[metric]
        assert effect[metric].low <= SLOWER <= effect[metric].high
    assert effect["throughput"].detectable and 1 / 1.4 < effect["throughput"].ratio < 1 / 1.2
    note = " ".join(result.order.notes)
    assert "the second run of a round was slower, whichever set ran" in note and "P50 3" in note
    assert "run's place in its round" in result.headline
    page = render_compare.compare_page(tmp_path, result, {
        label: summary_file.read(Path(runs[0])) for label, runs in result.runs.items()}, None)
    html = page.read_text()
    assert "the second run of a round was slower, whichever set ran" in html and "counterbalanced" in html
    assert "without the\nrun-order effect" in html


def test_a_verdict_that_rests_on_the_position_effect_is_downgraded(tmp_path: Path) -> None:
    """Unbalanced rounds (A B three times, then B A) and a tight calibrated prior: the paired interval alone says
    regressed; with the measured position effect taken out it contains 1, so the verdict is within noise."""
    variants = _aa(tmp_path, 4, "custom")
    first = json.loads((variants["recommended"][0] / "manifest.json").read_text())
    definition = first["scenarios"]["known"]["definition"]
    noise = MetricNoise(sd_log=RUN_SD, df=200, run_to_run_pct=100 * (math.exp(RUN_SD) - 1), pair_ratios=[],
                        detectable_pct={})
    tight = Calibration(id="tight", created="", index_set="recommended", machine={}, rounds=200,
                        dataset_fingerprint=first["dataset"]["fingerprint"], scenarios={"known": CalibratedScenario(
                            definition_digest=calibration.definition_digest(definition), definition=definition,
                            metrics=dict.fromkeys(("p50", "p95", "p99", "throughput"), noise))})
    result = comparison.build(variants, 0.05, calibration_store=CalibrationStore(entries=[tight]), n_boot=100)
    ci = result.scenarios["known"]["recommended#2"].vs_baseline["p50"]
    assert isinstance(ci, Interval) and ci.downgraded is not None and ci.position_adjusted is not None
    assert ci.verdict == "within noise" and ci.downgraded.startswith("regressed only with the run-order")
    assert "without that effect the result is no detectable change: P50 " in ci.downgraded or \
        "without that effect the result is within noise: P50 " in ci.downgraded, ci.downgraded
    assert ci.position_adjusted.verdict in ("no change", "within noise")
    assert "verdict(s) that rested on it downgraded to within noise" in result.headline
    assert result.order.design == "unbalanced"


@pytest.mark.parametrize("k", [2, 3, 4])
def test_the_estimate_separates_position_from_set_for_k_variants(k: int) -> None:
    """Williams rounds of k variants with real set effects and a later-run effect: the estimate recovers it."""
    rng = np.random.default_rng(k)
    set_effect = [1.0, 0.5, 2.0, 1.2][:k]
    placed = [PlacedFigure(v, r, p, RunFigure(20 * set_effect[v] * (SLOWER if p else 1)
                                              * math.exp(rng.normal(0, RUN_SD)), 1e-4, 100, 10))
              for r, row in enumerate(schedule(k, 2 * k)) for p, v in enumerate(row)]
    e = position_effect(placed, "p50")
    assert e.separable and e.detectable and e.low < SLOWER < e.high and abs(e.ratio / SLOWER - 1) < 0.05
    fixed = [PlacedFigure(v, r, v, f.figure) for f in placed for v, r in [(f.variant, f.round)]]
    assert not position_effect(fixed, "p50").separable
