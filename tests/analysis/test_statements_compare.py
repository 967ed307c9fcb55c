"""Per statement, each set against the baseline (analysis.statements_compare through comparison.build's interval):
copies of the known run with db/statements.json and db/waits.json written from the models with known numbers over
3 rounds, so every ratio and interval has a known answer; one round gives the ratio alone; a set whose runs lack
the files is said "not recorded" and compared for nothing."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from bookbench.analysis import comparison, inference, statements_compare
from bookbench.artifacts.comparison import (
    Comparison,
    Interval,
    NotCompared,
    OneRound,
    ScenarioStatementsComparison,
    StatementRow,
)
from bookbench.artifacts.db_evidence import (
    WAIT_CATEGORIES,
    ScenarioStatements,
    ScenarioWaits,
    ServiceTiming,
    StatementDelta,
    StatementsFile,
    WaitsFile,
    WaitShares,
    Window,
    write_statements,
    write_waits,
)
from bookbench.artifacts.folder import RunFolder

KNOWN = Path(__file__).resolve().parents[1] / "data" / "known_run"
SCENARIO = "known"
WINDOW_S = 10.0
NOISE = 0.05
# per round, a factor on the baseline's and the candidate's figures: the candidate's ratio per round is
# TRUTH * CAND[i] / BASE[i], whose geometric mean over the 3 rounds is exactly TRUTH (the factors' logs cancel)
BASE = (1.0, 1.10, 0.95)
CAND = (1.05, 1.10 / 1.05, 0.95)

# the known answer, per set: (calls, mean exec ms, shared blocks hit per call, read per call) of each own statement
FIGURES = {
    "none": {"conflict check": (300, 12.5, 1400, 30), "booking function": (300, 13.4, 1410, 30),
             "availability": (600, 0.50, 40, 2), "notify": (300, 0.01, 0, 0)},
    "recommended": {"conflict check": (3000, 0.10, 4, 0), "booking function": (3000, 0.25, 12, 0),
                    "availability": (6000, 0.45, 38, 2), "notify": (3000, 0.01, 0, 0)},
}
WAITS = {"none": {"CPU": 0.30, "Lock:advisory": 0.60, "IO:DataFileRead": 0.10},
         "recommended": {"CPU": 0.90, "Lock:advisory": 0.02, "Client:ClientRead": 0.08}}


def _delta(label: str, own: bool, query: str, calls: int, mean_ms: float, hit: int, read: int) -> StatementDelta:
    return StatementDelta(queryid=str(len(query)), label=label, own=own, toplevel=label != "conflict check",
                          query=query, calls=calls, total_exec_ms=calls * mean_ms, mean_exec_ms=mean_ms, rows=calls,
                          shared_blks_hit=calls * hit, shared_blks_read=calls * read, shared_blks_dirtied=0,
                          temp_blks_read=0, temp_blks_written=0, wal_bytes=None, plans=None, total_plan_ms=None)


def _statements(set_name: str, factor: float) -> list[StatementDelta]:
    out = [_delta(label, True, f"SELECT {label.replace(' ', '_')}($1)", calls, mean * factor, hit, read)
           for label, (calls, mean, hit, read) in FIGURES[set_name].items()]
    # not the service's: one costly enough to be among the top 3 of its run, one too cheap to be shown
    out.append(_delta("other", False, "SELECT pg_sleep($1)", 10, 300.0 * factor, 0, 0))
    out.append(_delta("other", False, "SELECT $1 FROM pg_class", 5, 0.01, 2, 0))
    return sorted(out, key=lambda s: -s.total_exec_ms)


def _waits(set_name: str, round_i: int) -> ScenarioWaits:
    # round 2's shares shifted by 0.06 between the first two categories: the mean over 3 rounds is the known share
    shares = {c: WAITS[set_name].get(c, 0.0) for c in WAIT_CATEGORIES}
    first, second = list(WAITS[set_name])[:2]
    shift = {0: 0.0, 1: 0.06, 2: -0.06}[round_i]
    shares[first] += shift
    shares[second] -= shift
    counts = {c: round(1000 * v) for c, v in shares.items()}
    window = Window(start=0.0, end=WINDOW_S)
    timing = ServiceTiming(requests=100, handler_ms_mean=20.0, pool_wait_ms_mean=5.0 + round_i, db_ms_mean=12.0,
                           bands={})
    return ScenarioWaits(window=window, waits=WaitShares(hz=15.0, instants=150, observations=1000,
                                                        busy_backends_mean=1000 / 150, counts=counts, shares=shares),
                         service=timing)


def statement_run(dest: Path, set_name: str, round_i: int, factor: float, files: bool = True) -> Path:
    """A copy of the known run; with `files`, its db/statements.json and db/waits.json with the known figures times
    `factor`, and (round 1) the EXPLAIN files of the conflict check and the insert."""
    shutil.copytree(KNOWN, dest)
    if not files:
        return dest
    folder = RunFolder(dest)
    folder.statements.parent.mkdir(exist_ok=True)
    window = Window(start=1_700_000_000.0, end=1_700_000_000.0 + WINDOW_S, note="synthetic")
    write_statements(folder.statements, StatementsFile(
        source="synthetic", scenarios={SCENARIO: ScenarioStatements(window=window,
                                                                    statements=_statements(set_name, factor))}))
    write_waits(folder.waits, WaitsFile(scenarios={SCENARIO: _waits(set_name, round_i)}))
    if round_i == 0:
        folder.explain_dir.mkdir(exist_ok=True)
        for name in ("conflict_check", "insert"):
            (folder.explain_dir / f"{name}.json").write_text('{"sql": "", "plan": [], "summary": {}}')
    return dest


def statement_variants(tmp: Path, rounds: int = 3, without: tuple[tuple[str, int], ...] = ()
                       ) -> dict[str, list[Path]]:
    """none and recommended, `rounds` rounds each, with the known figures; (set, round) in `without` has no files."""
    factors = {"none": BASE, "recommended": CAND}
    return {s: [statement_run(tmp / f"{s}-{i}", s, i, factors[s][i], (s, i) not in without) for i in range(rounds)]
            for s in factors}


def _compared(variants: dict[str, list[Path]]) -> ScenarioStatementsComparison:
    result = statements_compare.compare(variants, [SCENARIO], comparison.statement_cell(NOISE), "prior")
    assert result is not None
    return result[SCENARIO]


def _rows(variants: dict[str, list[Path]]) -> dict[str, StatementRow]:
    return {r.key: r for r in _compared(variants).statements}


def _expected_interval(truth: float, rounds: int) -> tuple[float, float, float]:
    """The paired t interval worked out independently: log ratios per round, their variance pooled with the default
    prior (10 % per run, 2 df), t with 2 + rounds - 1 df."""
    d = np.log([truth * c / b for b, c in zip(BASE[:rounds], CAND[:rounds], strict=True)])
    prior = inference.default_prior()
    df = prior.df + rounds - 1
    pooled = (prior.df * prior.sd ** 2 + (rounds - 1) * float(d.var(ddof=1)) / 2) / df
    half = float(scipy_stats.t.ppf(0.975, df)) * math.sqrt(pooled * 2 / rounds)
    return math.exp(d.mean()), math.exp(d.mean() - half), math.exp(d.mean() + half)


def test_known_ratios_and_intervals_over_three_rounds(tmp_path: Path) -> None:
    variants = statement_variants(tmp_path)
    rows = _rows(variants)
    row = rows["conflict check"]
    # the own statements in the baseline's order of total time, then the one costly other; the cheap other is left out
    assert list(rows) == ["booking function", "conflict check", "availability", "notify",
                          "other: SELECT pg_sleep($1)"]
    base, cand = row.sets["none"], row.sets["recommended"]
    assert base.mean_exec_ms == pytest.approx(12.5 * math.prod(BASE) ** (1 / 3))
    assert (base.hit_per_call, base.read_per_call, base.blocks_per_call) == pytest.approx((1400, 30, 1430))
    assert base.calls == 900 and base.calls_per_s == pytest.approx(30.0) and cand.calls_per_s == pytest.approx(300.0)
    ratio, low, high = _expected_interval(0.10 / 12.5, 3)
    ci = cand.vs_baseline["mean_exec_ms"]
    assert isinstance(ci, Interval) and ci.metric == "mean_exec_ms" and ci.rounds == 3 and ci.paired
    assert ci.ratio == pytest.approx(0.008) and ci.ratio == pytest.approx(ratio)
    assert (ci.low, ci.high) == pytest.approx((low, high))
    assert ci.low < 0.008 < ci.high and ci.verdict == "improved"
    assert ci.run_ratios == pytest.approx([0.008 * c / b for b, c in zip(BASE, CAND, strict=True)])
    blocks = cand.vs_baseline["blocks_per_call"]
    assert isinstance(blocks, Interval) and blocks.ratio == pytest.approx(4 / 1430)
    assert blocks.low < 4 / 1430 < blocks.high
    # 0 blocks read per call by the candidate: no ratio of zero, the reason instead
    read = cand.vs_baseline["read_per_call"]
    assert isinstance(read, NotCompared) and read.error == "recommended-0: 0 shared blocks read per call, no ratio"
    calls = cand.vs_baseline["calls_per_s"]
    assert isinstance(calls, Interval) and calls.ratio == pytest.approx(10.0) and calls.verdict == "improved"
    assert calls.low < 10 < calls.high
    # a statement only a little faster (0.45 vs 0.50 ms, with the same per-round noise): not called improved
    avail = rows["availability"].sets["recommended"].vs_baseline["mean_exec_ms"]
    assert isinstance(avail, Interval) and avail.ratio == pytest.approx(0.9) and avail.verdict != "improved"
    assert avail.low < 0.9 < avail.high
    # EXPLAIN files: the booking function links both plans it runs; availability has none in these runs
    assert [Path(p).name for p in rows["booking function"].sets["none"].explain] == ["conflict_check.json",
                                                                                     "insert.json"]
    assert rows["availability"].sets["none"].explain == [] and rows["other: SELECT pg_sleep($1)"].own is False


def test_wait_shares_are_the_mean_over_rounds(tmp_path: Path) -> None:
    waits = _compared(statement_variants(tmp_path)).waits
    assert waits["none"].runs == 3 and waits["none"].observations == 3000
    for set_name, shares in WAITS.items():
        for category in WAIT_CATEGORIES:
            assert waits[set_name].shares[category] == pytest.approx(shares.get(category, 0.0)), category
    assert waits["none"].pool_wait_ms_mean == pytest.approx(6.0) and waits["none"].not_measured is None


def test_one_round_gives_the_ratio_without_an_interval(tmp_path: Path) -> None:
    row = _rows(statement_variants(tmp_path, rounds=1))["conflict check"]
    cell = row.sets["recommended"].vs_baseline["mean_exec_ms"]
    assert isinstance(cell, OneRound) and cell.ratio == pytest.approx(0.10 * CAND[0] / (12.5 * BASE[0]))
    assert "no interval" in cell.note


def test_a_set_without_the_files_is_not_recorded_and_compared_for_nothing(tmp_path: Path) -> None:
    result = _compared(statement_variants(tmp_path, without=(("recommended", 1),)))
    assert result.not_recorded == {
        "recommended": "not recorded for recommended: run 2 of 3 (recommended-1) has no db/statements.json"}
    assert all(set(r.sets) == {"none"} and r.sets["none"].vs_baseline == {} for r in result.statements)
    assert result.waits["recommended"].not_measured == (
        "not recorded for recommended: run 2 of 3 (recommended-1) has no db/waits.json")
    assert result.waits["none"].runs == 3


def test_runs_from_before_the_evidence_leave_compare_json_as_it_was(tmp_path: Path) -> None:
    variants = statement_variants(tmp_path, rounds=1, without=(("none", 0), ("recommended", 0)))
    assert statements_compare.compare(variants, [SCENARIO], comparison.statement_cell(NOISE), "prior") is None


def test_not_measured_says_why(tmp_path: Path) -> None:
    variants = statement_variants(tmp_path, rounds=1)
    path = RunFolder(variants["none"][0]).statements
    write_statements(path, StatementsFile(source="synthetic", scenarios={SCENARIO: ScenarioStatements(
        window=None, statements=[], not_measured="not measured: pg_stat_statements is not installed")}))
    result = _compared(variants)
    assert result.not_recorded == {
        "none": "not measured for none: pg_stat_statements is not installed"}
    # the baseline has nothing: the candidate keeps its own figures, nothing is compared
    row = next(r for r in result.statements if r.key == "conflict check")
    assert row.sets["recommended"].mean_exec_ms == pytest.approx(0.10 * CAND[0]) and not row.sets[
        "recommended"].vs_baseline


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Comparison:
    from bookbench.pipeline.analyse import ensure_analysed

    variants = statement_variants(tmp_path_factory.mktemp("built"))
    for runs in variants.values():
        for d in runs:
            ensure_analysed(d)
    return comparison.build(variants, NOISE, n_boot=50)


def test_the_headline_names_the_statement_that_changed_most(built: Comparison) -> None:
    # the booking function went 13.4 -> 0.25 ms (54x), the conflict check 12.5 -> 0.10 ms (125x): the latter is named
    base = 12.5 * math.prod(BASE) ** (1 / 3)  # the geometric means over rounds: 12.7 ms and 0.10 ms
    assert (f" Per statement, the conflict check changed most: from {base:.1f} ms to 0.10 ms per call (improved: 125x "
            "lower, 95 % CI from ") in built.headline, built.headline
    assert "and from 1,430 to 4.0 shared blocks per call." in built.headline
    again = Comparison.model_validate(built.model_dump(mode="json"))
    assert again.statements is not None and again.statements == built.statements
    assert isinstance(again.statements[SCENARIO].statements[1].sets["recommended"].vs_baseline["mean_exec_ms"],
                      Interval)


def test_waits_with_no_busy_backend_say_so(tmp_path: Path) -> None:
    variants = statement_variants(tmp_path, rounds=1)
    idle = WaitShares(hz=15.0, instants=34, observations=0, busy_backends_mean=0.0,
                      counts=dict.fromkeys(WAIT_CATEGORIES, 0), shares=dict.fromkeys(WAIT_CATEGORIES, 0.0))
    write_waits(RunFolder(variants["none"][0]).waits, WaitsFile(scenarios={SCENARIO: ScenarioWaits(
        window=None, waits=idle, service=None, service_not_measured="not measured: the target does not report it")}))
    waits = _compared(variants).waits["none"]
    assert waits.shares == {} and waits.not_measured == "not measured: no busy backend in 34 sampling instants"
    assert waits.service_not_measured == "not measured: the target does not report it"
    assert waits.pool_wait_ms_mean is None
