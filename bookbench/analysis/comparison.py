"""Before/after comparison of index sets from their run folders: per scenario and metric, each set's figures as
its run reports state them, and candidate/baseline ratios with run-to-run intervals (bookbench.analysis.inference) and
verdicts; query plans side by side, index findings -> the Comparison that compare.json holds."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np

from bookbench.analysis import (
    calibration,
    findings,
    inference,
    machine,
    run_figures,
    run_order,
    statements_compare,
    stats,
    wording,
)
from bookbench.analysis.run_order import Figures
from bookbench.artifacts import manifest as manifest_file
from bookbench.artifacts import summary as summary_file
from bookbench.artifacts.comparison import (
    Adjusted,
    CalibrationStore,
    Cell,
    Comparison,
    Interval,
    NotCompared,
    OneRound,
    Order,
    Row,
)
from bookbench.artifacts.manifest import Manifest
from bookbench.errors import UsageError

HEADLINE_SCENARIOS = ("burst", "sustained", "ramp_up", "single")
CLAIMS = wording.CLAIMS


class NotComparable(UsageError):
    """Runs measured on different data or with different scenario definitions."""


def _manifest(run_dir: Path) -> Manifest:
    return manifest_file.read(run_dir)


def comparability_problems(run_dirs: list[Path]) -> list[str]:
    """Why these runs cannot be compared as they are (empty when they can)."""
    manifests = [_manifest(d) for d in run_dirs]
    first, problems = manifests[0], []
    for d, m in zip(run_dirs[1:], manifests[1:], strict=True):
        if m.dataset.fingerprint != first.dataset.fingerprint:
            problems.append(f"{d.name}: dataset {m.dataset.params} differs from {first.dataset.params}")
        mine = {n: e.definition for n, e in m.scenarios.items()}
        theirs = {n: e.definition for n, e in first.scenarios.items()}
        if mine != theirs:
            problems.append(f"{d.name}: scenario definitions differ from {run_dirs[0].name} "
                            "(other scenarios, durations, users or --quick)")
        if m.scenario_file.task_mix != first.scenario_file.task_mix:
            problems.append(f"{d.name}: the task mix differs")
    return problems


def status_words(status: str, reason: str | None) -> str:
    """A run's end as the page and the errors say it: "interrupted (stopped by SIGTERM)"; a manifest still
    `running` is a run in progress or one killed before anything could mark it."""
    words = "running (still running, or killed before it could say so)" if status == "running" else status
    if reason and reason.startswith(f"{status} "):  # "interrupted by the user (Ctrl-C)" says it already
        return reason
    return f"{words} ({reason})" if reason else words


def unfinished_runs(run_dirs: list[Path]) -> list[str]:
    """The runs that did not complete, each as "<folder>: <status> (<reason>)": an interrupted, killed or failed
    run measured part of its plan, under conditions nobody chose, so it is compared only with --force."""
    return [f"{d}: {status_words(m.status, m.reason)}" for d, m in ((d, _manifest(d)) for d in run_dirs)
            if m.status != "completed"]


def _said(label: str, ci: Cell) -> str:
    """A compared figure as a sentence of its own: "Improved: P95 20x lower, 95 % CI from 15x to 27x lower"."""
    words = wording.result(label, ci)
    return words[:1].upper() + words[1:]


def _headline(result: Comparison, best: str | None) -> str:
    """Sentences from the data: the best set against the baseline on the headline scenario, each figure verdict
    first with its interval (bookbench.analysis.wording), then the same set against every other candidate."""
    baseline = result.baseline
    if best is None:
        if len(result.sets) < 2:
            return "Only the baseline was measured: nothing to compare."
        if _best(result) is None:  # not one P95 ratio: the reason is in the table, said once per row
            return f"No scenario had enough samples to compare any candidate with {baseline} (see the table)."
        return f"No candidate is named the best against {baseline}."
    scenario = _headline_scenario(result, best)
    if scenario is None:
        return f"No scenario had enough samples to compare {best} with {baseline} (see the table)."
    rows = result.scenarios[scenario]
    row = rows[best]
    p95, tput = row.vs_baseline["p95"], row.vs_baseline["throughput"]
    assert isinstance(p95, Interval) and isinstance(tput, Interval)  # usable says so
    rounds = f"over {p95.rounds} round(s)" if p95.paired else "in unpaired runs"
    text = (f"Against {baseline}, {best} on {scenario} {rounds}, n={row.requests:,}. "
            f"{_said('P95', p95)} ({p95.baseline:,.0f} ms -> {p95.candidate:,.0f} ms). "
            f"{_said('throughput', tput)} ({tput.baseline:,.1f} -> {tput.candidate:,.1f} req/s).")
    others = [(other, cis["p95"]) for other, cis in row.vs.items()
              if other != baseline and isinstance(cis.get("p95"), Interval)]
    others += [(other, _flip(ci)) for other in result.sets
               if isinstance(ci := rows[other].vs.get(best, {}).get("p95"), Interval)]
    for other, ci in others:
        text += f" Against {other}, {wording.result('P95', ci)}."
    text += _statement_sentence(result, scenario, best)
    if result.repeat < 2:
        text += (" One run per set: run-to-run noise is not measured here, so only an effect far beyond it is "
                 "called improved or regressed.")
    return text


def _headline_scenario(result: Comparison, best: str) -> str | None:
    """The scenario the headline speaks of: the first of HEADLINE_SCENARIOS where the best set's P95 and throughput
    were compared with the baseline, else the first such scenario; None when there is none."""
    usable = [s for s, sets in result.scenarios.items()
              if all(isinstance(sets[best].vs_baseline.get(m), Interval) for m in ("p95", "throughput"))]
    return next((s for s in HEADLINE_SCENARIOS if s in usable), usable[0]) if usable else None


def _per_call_ms(v: float) -> str:
    return f"{v:,.1f}" if v >= 10 else f"{v:.2f}" if v >= 0.1 else f"{v:.3f}"


def _blocks(v: float) -> str:
    return f"{v:,.0f}" if v >= 10 else f"{v:.1f}"


def _statement_sentence(result: Comparison, scenario: str, best: str) -> str:
    """The service's own statement whose mean execution time per call changed most (largest |log ratio|) between
    the baseline and the best set on the headline scenario, with its figures; "" when none was compared."""
    compared = (result.statements or {}).get(scenario)
    if compared is None:
        return ""
    found = [(row, ci) for row in compared.statements if row.own and best in row.sets
             if isinstance(ci := row.sets[best].vs_baseline.get("mean_exec_ms"), Interval | OneRound)]
    if not found:
        return ""
    row, ci = max(found, key=lambda rc: abs(math.log(rc[1].ratio)))
    said = (wording.result("", ci) if isinstance(ci, Interval)
            else f"{wording.change(ci.ratio)}; one round, no interval")
    text = (f" Per statement, the {row.label} changed most: from {_per_call_ms(ci.baseline)} ms to "
            f"{_per_call_ms(ci.candidate)} ms per call ({said})")
    mine, theirs = row.sets[best].blocks_per_call, row.sets[result.baseline].blocks_per_call
    if mine is not None and theirs is not None:
        text += f" and from {_blocks(theirs)} to {_blocks(mine)} shared blocks per call"
    return text + "."


def _flip(ci: Interval) -> Interval:
    """An interval of b/a read as a/b: ratio and bounds inverted, the verdict mirrored."""
    mirrored = {"improved": "regressed", "regressed": "improved"}.get(ci.verdict, ci.verdict)
    # for P95 lower is better; for throughput the verdict is mirrored the same way
    return ci.model_copy(update={"ratio": 1 / ci.ratio, "low": 1 / ci.high, "high": 1 / ci.low, "verdict": mirrored,
                                 "baseline": ci.candidate, "candidate": ci.baseline})


def statement_cell(noise: float) -> statements_compare.CellOf:
    """The per-statement figures' intervals: this comparison's own (_interval), with the default noise prior (no
    calibration measures how a statement's figures wander) and no run-order adjustment."""
    def cell(figures: Figures, theirs: str, mine: str, metric: str) -> Cell:
        return _interval(figures, theirs, mine, metric, noise, None, (None, None))
    return cell


def build(variants: dict[str, list[Path]], noise: float, force: bool = False,
          calibration_store: CalibrationStore | None = None, n_boot: int = 500) -> Comparison:
    """Compare every variant against the first one (the baseline); variants map a label (the index set, or
    `set#2` for the same set measured again) to its run folders in round order."""
    if len(variants) < 2:
        raise NotComparable(f"a comparison needs at least two variants, got {len(variants)}: {', '.join(variants)}")
    all_runs = [d for runs in variants.values() for d in runs]
    unfinished = unfinished_runs(all_runs)
    if unfinished and not force:
        raise NotComparable(unfinished_message(unfinished))
    problems = comparability_problems(all_runs)
    if problems and not force:
        raise NotComparable("runs are not comparable (pass --force to compare anyway):\n  " + "\n  ".join(problems))
    baseline = next(iter(variants))
    first = _manifest(all_runs[0])
    fingerprint = first.dataset.fingerprint
    rounds = {len(r) for r in variants.values()}
    positions = run_order.placements(variants)
    result = Comparison(
        created=dt.datetime.now(dt.UTC).isoformat(), baseline=baseline, sets=list(variants),
        index_sets={label: _manifest(runs[0]).index_set.name for label, runs in variants.items()},
        repeat=min(rounds), paired=len(rounds) == 1, noise_threshold=noise, forced_despite=unfinished + problems,
        runs={s: [str(d) for d in runs] for s, runs in variants.items()},
        run_status={s: [status_words(m.status, m.reason) for m in map(_manifest, runs)]
                    for s, runs in variants.items()},
        scenarios={}, priors={}, findings={}, best=None, headline="",
        order=Order(design=run_order.design(positions), positions=positions or {}, notes=[]), position_effect={})
    statements = statements_compare.compare(variants, list(first.scenarios), statement_cell(noise),
                                            inference.default_prior().source)
    if statements is not None:
        result.statements = statements
    for name, entry in first.scenarios.items():
        definition = entry.definition
        figures = {label: [run_figures.figures(d, name, n_boot) for d in runs] for label, runs in variants.items()}
        result.priors[name] = {}
        effects = {m: run_order.position_effect(figures, positions, m, calibration.prior(
            calibration_store, definition, fingerprint, m)) for m in stats.METRICS}
        result.position_effect[name] = {m: e for m, e in effects.items() if e is not None}
        moved = {m: e for m, e in effects.items() if e is not None and e.detectable}
        per_set: dict[str, Row] = {}
        for label, runs in figures.items():
            requests = sum(f.requests for f in (r.get("p50") for r in runs) if isinstance(f, inference.RunFigure))
            # vs: this set against every set listed before it other than the baseline (candidates against each
            # other, e.g. recommended against seed); vs_baseline against the baseline
            row = Row(requests=requests, runs=len(runs), vs_baseline={}, vs={})
            _open_model(row, variants[label], name)
            earlier = list(figures)[1:list(figures).index(label)] if label != baseline else []
            for metric in stats.METRICS:
                mine = [r[metric] for r in runs]
                ok_mine = [v for v in mine if isinstance(v, inference.RunFigure)]
                if len(ok_mine) == len(mine):
                    setattr(row, metric, float(np.exp(np.mean(np.log([v.value for v in ok_mine])))))
                if label == baseline:
                    continue
                prior = calibration.prior(calibration_store, definition, fingerprint, metric)
                result.priors[name][metric] = (prior or inference.default_prior()).source
                shift = (moved.get(metric), positions)
                row.vs_baseline[metric] = _interval(figures, baseline, label, metric, noise, prior, shift)
                for other in earlier:
                    row.vs.setdefault(other, {})[metric] = _interval(figures, other, label, metric, noise, prior,
                                                                     shift)
            per_set[label] = row
        result.scenarios[name] = per_set
        if moved:
            result.order.notes.append(run_order.position_words(name, moved, len(variants)))
    if result.order.design == "fixed":
        result.order.notes.insert(0, (
            "Every round ran the sets in the same order, so an effect of a run's place in its round (what the "
            "previous run left behind, a trend inside the round, a neighbour in step with the schedule) cannot be "
            "told from a set effect and is not measured; --order balanced (the default) alternates the order."))
    result.interference = machine.interference(
        {label: [_manifest(d) for d in dirs] for label, dirs in variants.items()},
        calibration.interference_of(calibration_store, fingerprint))
    result.findings = {s: findings.index_findings(runs[0]) for s, runs in variants.items()}
    lowest = _best(result)
    # a set resting on a run that did not complete is never the best; every ratio rests on the baseline's runs
    result.best = None if _unfinished_in(result, baseline) else _best(
        result, exclude=_unfinished_in(result, *result.sets))
    result.headline = _headline(result, result.best) + _order_sentence(result) + _unfinished_sentence(
        result, lowest)
    return result


def nothing_compared(index_sets: dict[str, str], noise: float) -> Comparison:
    """The Comparison of a compare stopped before any round was complete: its plan (labels and their index sets)
    and no figures, so that what it did is still on file and on the page."""
    labels = list(index_sets)
    return Comparison(
        created=dt.datetime.now(dt.UTC).isoformat(), baseline=labels[0], sets=labels, index_sets=index_sets,
        repeat=0, paired=False, noise_threshold=noise, forced_despite=[], runs={label: [] for label in labels},
        run_status={label: [] for label in labels}, scenarios={}, priors={}, findings={}, best=None,
        headline="What each run measured is in its own report.",
        order=Order(design="unpaired", positions={}, notes=[]), position_effect={})


def unfinished_message(unfinished: list[str]) -> str:
    return ("runs that did not complete are not compared (pass --force to compare them anyway; the page then marks "
            "them and never names a set resting on one the best):\n  " + "\n  ".join(unfinished))


def _unfinished_in(result: Comparison, *labels: str) -> list[str]:
    """The labels among these whose runs include one that did not complete."""
    return [label for label in labels if any(s != "completed" for s in result.run_status[label])]


def _unfinished_sentence(result: Comparison, lowest: str | None) -> str:
    """With --force over runs that did not complete: which sets rest on one, and that the set with the lowest P95
    was not named the best when it (or the baseline every ratio is taken against) does."""
    marked = _unfinished_in(result, *result.sets)
    if not marked:
        return ""
    text = f" Compared with --force although runs of {', '.join(marked)} did not complete (see the table)"
    if _unfinished_in(result, result.baseline):
        text += f"; no set is named the best, as every ratio is taken against the baseline {result.baseline}"
    elif lowest is not None and lowest != result.best:
        text += f"; {lowest} had the lowest P95 but is not named the best set, as that rests on such a run"
    return text + "."


def _order_sentence(result: Comparison) -> str:
    """The headline's note on run order: a measured position effect and the verdicts it downgraded."""
    moved = [s for s, per in result.position_effect.items() if any(e.detectable for e in per.values())]
    if not moved:
        return ""
    downgraded = sum(1 for sets in result.scenarios.values() for row in sets.values()
                     for ci in [*row.vs_baseline.values(), *(c for cis in row.vs.values() for c in cis.values())]
                     if isinstance(ci, Interval) and ci.downgraded)
    rested = (f"{downgraded} verdict(s) that rested on it downgraded to within noise" if downgraded
              else "no verdict rested on it")
    return f" A run's place in its round changed its figures ({', '.join(moved)}; see Run order): {rested}."


def _open_model(row: Row, runs: list[Path], scenario: str) -> None:
    """An open-model scenario's other two figures for a set, set on its row: P95 from the intended send time
    (geometric mean over its runs) and the arrivals dropped (summed); nothing for a closed-model scenario."""
    found = [sc.open_model for sc in (summary_file.read(d).scenarios.get(scenario) for d in runs)
             if sc and sc.open_model]
    if not found:
        return
    p95s = [p for p in (om.latency_from_intended_ms.p95 for om in found) if p]
    row.p95_from_intended = float(np.exp(np.mean(np.log(p95s)))) if p95s else None
    row.dropped = sum(om.dropped for om in found)


def _interval(figures: Figures, theirs: str, mine: str, metric: str, noise: float,
              prior: inference.NoisePrior | None, shift: run_order.Shift) -> Cell:
    """`mine` against `theirs` for one metric, or the reason it cannot be compared. With a detectable position
    effect the interval is also computed with that effect taken out of every later run; a verdict that would then
    change class or direction rests on the run order, not the set, and is downgraded to within noise."""
    a, b = [r[metric] for r in figures[theirs]], [r[metric] for r in figures[mine]]
    bad = [v for v in (*b, *a) if isinstance(v, str)]
    if bad:
        return NotCompared(error=bad[0])
    ok_a = [v for v in a if isinstance(v, inference.RunFigure)]
    ok_b = [v for v in b if isinstance(v, inference.RunFigure)]
    ci = inference.compare_rounds(ok_a, ok_b, metric, noise, prior)
    effect, positions = shift
    if effect is None or positions is None:
        return ci
    adj = inference.compare_rounds(run_order.without(effect, ok_a, positions[theirs]),
                                   run_order.without(effect, ok_b, positions[mine]), metric, noise, prior)
    ci.position_adjusted = Adjusted(ratio=adj.ratio, low=adj.low, high=adj.high, verdict=adj.verdict)
    changed = adj.verdict != ci.verdict or _direction(adj.low, adj.high) != _direction(ci.low, ci.high)
    if changed and ci.verdict in CLAIMS:
        ci.downgraded = (
            f"{wording.verdict(ci.verdict, ci.ratio)} only with the run-order effect in it (a later run of "
            f"a round has {wording.metric(metric)} {wording.change(effect.ratio)}); without that effect the result "
            f"is {wording.result(wording.metric(metric), adj)}")
        ci.verdict = "within noise"
    return ci


def _direction(low: float, high: float) -> int:
    """+1 / -1 when the whole interval lies above / below 1, 0 when it contains 1."""
    return 1 if low > 1 else (-1 if high < 1 else 0)


def _best(result: Comparison, exclude: tuple[str, ...] | list[str] = ()) -> str | None:
    """The candidate (other than those excluded) with the lowest geometric mean of its P95 ratios over all
    scenarios."""
    scores = {}
    for set_name in result.sets:
        if set_name == result.baseline or set_name in exclude:
            continue
        ratios = [ci.ratio for sc in result.scenarios.values()
                  if isinstance(ci := sc[set_name].vs_baseline.get("p95"), Interval)]
        if ratios:
            scores[set_name] = float(np.exp(np.mean(np.log(ratios))))
    return min(scores, key=lambda k: scores[k]) if scores else None

