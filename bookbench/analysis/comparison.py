"""Before/after comparison of index sets from their run folders: per scenario and metric, each set's figures as
its run reports state them, and candidate/baseline ratios with run-to-run intervals (bookbench.analysis.inference) and
verdicts; query plans side by side, index findings -> compare.json."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bookbench.analysis import calibration, findings, inference, stats, wording
from bookbench.analysis import summarize as analysis
from bookbench.artifacts import manifest as manifest_file
from bookbench.artifacts import summary as summary_file
from bookbench.artifacts.comparison import COMPARE_FORMAT_VERSION
from bookbench.artifacts.manifest import Manifest
from bookbench.errors import UsageError

HEADLINE_SCENARIOS = ("burst", "sustained", "ramp_up", "single")


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


def series(run_dir: Path, scenario: str) -> stats.RunSeries:
    """A scenario's steady-state requests as (1-second window, latency) for the bootstrap."""
    entry = _manifest(run_dir).scenarios[scenario]
    df = analysis.load_samples(run_dir / (entry.samples_file or f"samples/{scenario}.csv.gz"))
    if df.empty:
        return stats.RunSeries.from_arrays(np.array([], dtype=int), np.array([], dtype=float))
    start = float(df["ts"].min()) + float(entry.definition.get("warmup_s", 0))
    steady = df[df["ts"] >= start]
    second = np.floor(steady["ts"].to_numpy() - start).astype(int)
    # the last second is cut short by the end of the scenario: counting it as a whole window would understate
    # throughput, so only whole seconds enter (throughput here = requests per whole 1-second window)
    whole = second < second.max() if second.size else second.astype(bool)
    return stats.RunSeries.from_arrays(second[whole], steady["latency_ms"].to_numpy(dtype=float)[whole])


def _figures(run_dir: Path, scenario: str, n_boot: int) -> dict[str, inference.RunFigure | str]:
    """One run's figures per metric exactly as its report states them (summary.json), each with its within-run
    spread from the block bootstrap; a metric that cannot be compared maps to the reason."""
    sc = summary_file.read(run_dir)["scenarios"].get(scenario)
    if not sc or not sc["requests"]:
        return dict.fromkeys(stats.METRICS, f"{run_dir.name}: no samples in {scenario}")
    blocks = series(run_dir, scenario)
    out: dict[str, inference.RunFigure | str] = {}
    for metric in stats.METRICS:
        value = sc["throughput_rps"] if metric == "throughput" else sc["latency_ms"][metric]
        try:
            within = stats.within_run_log_variance(blocks, metric, n_boot=n_boot)
        except ValueError as exc:
            out[metric] = f"{run_dir.name}: {exc}"
            continue
        out[metric] = inference.RunFigure(value=float(value), within_var=within, requests=int(sc["requests"]),
                                          blocks=blocks.blocks)
    return out


def _p95_words(ci: dict[str, Any]) -> str:
    """How a P95 interval reads: "31x lower (95 % CI 21x-45x lower)" with its verdict when it is not a change."""
    words = f"{wording.change(ci['ratio'])} (95 % CI {wording.interval(ci['low'], ci['high'])})"
    return words if ci["verdict"] in ("improved", "regressed") else f"{words}, {ci['verdict']}"


def _headline(result: dict[str, Any], baseline: str, best: str | None) -> str:
    """One sentence from the data: the best set against the baseline on the headline scenario, said in words with
    its interval, then the same set against every other candidate."""
    if best is None:
        return "Only the baseline was measured: nothing to compare."
    usable = [s for s, sets in result["scenarios"].items()
              if all("ratio" in sets[best]["vs_baseline"].get(m, {}) for m in ("p95", "throughput"))]
    if not usable:
        return f"No scenario had enough samples to compare {best} with {baseline} (see the table)."
    scenario = next((s for s in HEADLINE_SCENARIOS if s in usable), usable[0])
    row = result["scenarios"][scenario][best]
    p95, tput = row["vs_baseline"]["p95"], row["vs_baseline"]["throughput"]
    rounds = f"{p95['rounds']} round(s)" if p95["paired"] else "unpaired runs"
    text = (f"Against {baseline}, {best} has {scenario} P95 {_p95_words(p95)}: {p95['baseline']:,.0f} ms -> "
            f"{p95['candidate']:,.0f} ms over {rounds}, n={row['requests']:,}; throughput "
            f"{wording.change(tput['ratio'])} ({tput['baseline']:,.1f} -> {tput['candidate']:,.1f} req/s, "
            f"{tput['verdict']}).")
    others = [(other, row["vs"][other]["p95"]) for other in row.get("vs", {})
              if other != baseline and "ratio" in row["vs"][other].get("p95", {})]
    others += [(other, _flip(result["scenarios"][scenario][other]["vs"][best]["p95"]))
               for other in result["sets"] if best in result["scenarios"][scenario][other].get("vs", {})
               and "ratio" in result["scenarios"][scenario][other]["vs"][best].get("p95", {})]
    for other, ci in others:
        text += f" Against {other}: P95 {_p95_words(ci)}."
    if result["repeat"] < 2:
        text += (" One run per set: run-to-run noise is not measured here, so only an effect far beyond it is "
                 "called improved or regressed.")
    return text


def _flip(ci: dict[str, Any]) -> dict[str, Any]:
    """An interval of b/a read as a/b: ratio and bounds inverted, the verdict mirrored."""
    mirrored = {"improved": "regressed", "regressed": "improved"}.get(ci["verdict"], ci["verdict"])
    # for P95 lower is better; for throughput the verdict is mirrored the same way
    return {**ci, "ratio": 1 / ci["ratio"], "low": 1 / ci["high"], "high": 1 / ci["low"], "verdict": mirrored,
            "baseline": ci["candidate"], "candidate": ci["baseline"]}


def build(variants: dict[str, list[Path]], noise: float, force: bool = False,
          calibration_store: dict[str, Any] | None = None, n_boot: int = 500) -> dict[str, Any]:
    """Compare every variant against the first one (the baseline); variants map a label (the index set, or
    `set#2` for the same set measured again) to its run folders in round order."""
    if len(variants) < 2:
        raise NotComparable(f"a comparison needs at least two variants, got {len(variants)}: {', '.join(variants)}")
    all_runs = [d for runs in variants.values() for d in runs]
    problems = comparability_problems(all_runs)
    if problems and not force:
        raise NotComparable("runs are not comparable (pass --force to compare anyway):\n  " + "\n  ".join(problems))
    baseline = next(iter(variants))
    first = _manifest(all_runs[0])
    fingerprint = first.dataset.fingerprint
    rounds = {len(r) for r in variants.values()}
    result: dict[str, Any] = {
        "format_version": COMPARE_FORMAT_VERSION, "created": dt.datetime.now(dt.UTC).isoformat(),
        "baseline": baseline, "sets": list(variants),
        "index_sets": {label: _manifest(runs[0]).index_set.name for label, runs in variants.items()},
        "repeat": min(rounds), "paired": len(rounds) == 1,
        "noise_threshold": noise, "forced_despite": problems,
        "runs": {s: [str(d) for d in runs] for s, runs in variants.items()}, "scenarios": {},
        "priors": {},
    }
    for name, entry in first.scenarios.items():
        definition = entry.definition
        figures = {label: [_figures(d, name, n_boot) for d in runs] for label, runs in variants.items()}
        per_set: dict[str, Any] = {}
        result["priors"][name] = {}
        for label, runs in figures.items():
            requests = sum(f.requests for f in (r.get("p50") for r in runs) if isinstance(f, inference.RunFigure))
            # vs: this set against every set listed before it other than the baseline (candidates against each
            # other, e.g. recommended against seed); vs_baseline against the baseline
            row: dict[str, Any] = {"requests": requests, "runs": len(runs), "vs_baseline": {}, "vs": {}}
            row.update(_open_model(variants[label], name))
            earlier = list(figures)[1:list(figures).index(label)] if label != baseline else []
            for metric in stats.METRICS:
                mine = [r[metric] for r in runs]
                ok_mine = [v for v in mine if isinstance(v, inference.RunFigure)]
                if len(ok_mine) == len(mine):
                    row[metric] = float(np.exp(np.mean(np.log([v.value for v in ok_mine]))))
                if label == baseline:
                    continue
                prior = calibration.prior(calibration_store, definition, fingerprint, metric)
                result["priors"][name][metric] = (prior or inference.default_prior()).source
                row["vs_baseline"][metric] = _interval(figures[baseline], runs, metric, noise, prior)
                for other in earlier:
                    row["vs"].setdefault(other, {})[metric] = _interval(figures[other], runs, metric, noise, prior)
            per_set[label] = row
        result["scenarios"][name] = per_set
    result["findings"] = {s: findings.index_findings(runs[0]) for s, runs in variants.items()}
    result["best"] = _best(result, baseline)
    result["headline"] = _headline(result, baseline, result["best"])
    return result


def _open_model(runs: list[Path], scenario: str) -> dict[str, Any]:
    """An open-model scenario's other two figures for a set: P95 from the intended send time (geometric mean over
    its runs) and the arrivals dropped (summed); nothing for a closed-model scenario."""
    found = [sc["open_model"] for sc in (summary_file.read(d)["scenarios"].get(scenario) for d in runs)
             if sc and sc.get("open_model")]
    p95s = [om["latency_from_intended_ms"]["p95"] for om in found if om["latency_from_intended_ms"]["p95"]]
    if not found:
        return {}
    return {"p95_from_intended": float(np.exp(np.mean(np.log(p95s)))) if p95s else None,
            "dropped": sum(int(om["dropped"]) for om in found)}


def _interval(theirs: list[dict[str, inference.RunFigure | str]], mine: list[dict[str, inference.RunFigure | str]],
              metric: str, noise: float, prior: inference.NoisePrior | None) -> dict[str, Any]:
    """`mine` against `theirs` for one metric, or the reason it cannot be compared."""
    a, b = [r[metric] for r in theirs], [r[metric] for r in mine]
    bad = [v for v in (*b, *a) if isinstance(v, str)]
    if bad:
        return {"error": str(bad[0])}
    ok_a = [v for v in a if isinstance(v, inference.RunFigure)]
    ok_b = [v for v in b if isinstance(v, inference.RunFigure)]
    return asdict(inference.compare_rounds(ok_a, ok_b, metric, noise, prior))


def _best(result: dict[str, Any], baseline: str) -> str | None:
    """The candidate with the lowest geometric mean of its P95 ratios over all scenarios."""
    scores = {}
    for set_name in result["sets"]:
        if set_name == baseline:
            continue
        ratios = [sc[set_name]["vs_baseline"]["p95"]["ratio"] for sc in result["scenarios"].values()
                  if "ratio" in sc[set_name]["vs_baseline"].get("p95", {})]
        if ratios:
            scores[set_name] = float(np.exp(np.mean(np.log(ratios))))
    return min(scores, key=lambda k: scores[k]) if scores else None
