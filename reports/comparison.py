"""Before/after comparison of index sets from their run folders: ratios with block-bootstrap intervals and
verdicts per scenario and metric, query plans side by side, index findings -> compare.json."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from reports import analysis, findings, stats

COMPARE_FORMAT_VERSION = 1
HEADLINE_SCENARIOS = ("burst", "sustained", "ramp_up", "single")


class NotComparable(ValueError):
    """Runs measured on different data or with different scenario definitions."""


def _manifest(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "manifest.json").read_text()))


def comparability_problems(run_dirs: list[Path]) -> list[str]:
    """Why these runs cannot be compared as they are (empty when they can)."""
    manifests = [_manifest(d) for d in run_dirs]
    first, problems = manifests[0], []
    for d, m in zip(run_dirs[1:], manifests[1:], strict=True):
        if m["dataset"]["fingerprint"] != first["dataset"]["fingerprint"]:
            problems.append(f"{d.name}: dataset {m['dataset']['params']} differs from {first['dataset']['params']}")
        mine = {n: e["definition"] for n, e in m["scenarios"].items()}
        theirs = {n: e["definition"] for n, e in first["scenarios"].items()}
        if mine != theirs:
            problems.append(f"{d.name}: scenario definitions differ from {run_dirs[0].name} "
                            "(other scenarios, durations, users or --quick)")
        if m["scenario_file"]["task_mix"] != first["scenario_file"]["task_mix"]:
            problems.append(f"{d.name}: the task mix differs")
    return problems


def series(run_dir: Path, scenario: str) -> stats.RunSeries:
    """A scenario's steady-state requests as (1-second window, latency) for the bootstrap."""
    entry = _manifest(run_dir)["scenarios"][scenario]
    df = analysis.load_samples(run_dir / entry.get("samples_file", f"samples/{scenario}.csv.gz"))
    if df.empty:
        return stats.RunSeries.from_arrays(np.array([], dtype=int), np.array([], dtype=float))
    start = float(df["ts"].min()) + float(entry["definition"].get("warmup_s", 0))
    steady = df[df["ts"] >= start]
    second = np.floor(steady["ts"].to_numpy() - start).astype(int)
    # the last second is cut short by the end of the scenario: counting it as a whole window would understate
    # throughput, so only whole seconds enter (throughput here = requests per whole 1-second window)
    whole = second < second.max() if second.size else second.astype(bool)
    return stats.RunSeries.from_arrays(second[whole], steady["latency_ms"].to_numpy(dtype=float)[whole])


def _headline(result: dict[str, Any], baseline: str, best: str | None) -> str:
    if best is None:
        return "Only the baseline was measured: nothing to compare."
    usable = [s for s, sets in result["scenarios"].items()
              if all("ratio" in sets[best]["vs_baseline"].get(m, {}) for m in ("p95", "throughput"))]
    if not usable:
        return f"No scenario had enough samples to compare {best} with {baseline} (see the table)."
    scenario = next((s for s in HEADLINE_SCENARIOS if s in usable), usable[0])
    row = result["scenarios"][scenario][best]["vs_baseline"]
    p95, tput = row["p95"], row["throughput"]
    word = {"improved": "cut", "regressed": "raised", "within noise": "changed (within noise)",
            "no change": "did not change"}[p95["verdict"]]
    return (f"The {best} set {word} {scenario} P95 from {p95['baseline']:.0f} ms to {p95['candidate']:.0f} ms "
            f"(ratio {p95['ratio']:.3g}, 95 % CI {p95['low']:.3g}-{p95['high']:.3g}, n={p95['n_candidate']:,}); "
            f"throughput {tput['ratio']:.2f}x ({tput['baseline']:.1f} -> {tput['candidate']:.1f} req/s, "
            f"CI {tput['low']:.2f}-{tput['high']:.2f}x) against {baseline}.")


def build(variants: dict[str, list[Path]], noise: float, force: bool = False, n_boot: int = 2000
          ) -> dict[str, Any]:
    """Compare every set against the first one (the baseline); variants map set name -> its run folders."""
    all_runs = [d for runs in variants.values() for d in runs]
    problems = comparability_problems(all_runs)
    if problems and not force:
        raise NotComparable("runs are not comparable (pass --force to compare anyway):\n  " + "\n  ".join(problems))
    baseline = next(iter(variants))
    scenario_names = list(_manifest(all_runs[0])["scenarios"])
    result: dict[str, Any] = {
        "format_version": COMPARE_FORMAT_VERSION, "created": dt.datetime.now(dt.UTC).isoformat(),
        "baseline": baseline, "sets": list(variants), "repeat": max(len(r) for r in variants.values()),
        "noise_threshold": noise, "forced_despite": problems,
        "runs": {s: [str(d) for d in runs] for s, runs in variants.items()}, "scenarios": {},
    }
    for name in scenario_names:
        loaded = {s: [series(d, name) for d in runs] for s, runs in variants.items()}
        per_set: dict[str, Any] = {}
        for set_name, runs in loaded.items():
            row: dict[str, Any] = {"requests": sum(r.requests for r in runs), "vs_baseline": {}}
            for metric in stats.METRICS:
                try:
                    ci = stats.compare(loaded[baseline], runs, metric, noise=noise, n_boot=n_boot)
                except ValueError as exc:
                    row["vs_baseline"][metric] = {"error": str(exc)}
                    continue
                row[metric] = ci.candidate
                row["vs_baseline"][metric] = asdict(ci)
            per_set[set_name] = row
        result["scenarios"][name] = per_set
    result["findings"] = {s: findings.index_findings(runs[0]) for s, runs in variants.items()}
    result["best"] = _best(result, baseline)
    result["headline"] = _headline(result, baseline, result["best"])
    return result


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


def write(folder: Path, result: dict[str, Any]) -> Path:
    path = folder / "compare.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    return path
