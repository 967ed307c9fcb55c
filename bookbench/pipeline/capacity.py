"""The capacity stage: per index set, the highest arrival rate the service takes within its P95 and error-rate
limits. Open-model steps: double the rate until a step breaks a limit (or drops arrivals), then bisect between
the last step that held and the first that broke; the bracket is the answer's interval (its resolution, not a
statistical confidence interval). Each step is a full run folder of one generated open-model scenario."""

from __future__ import annotations

import datetime as dt
import os
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from rich.console import Console

from bookbench.analysis import judge, machine, wording
from bookbench.artifacts import capacity_steps
from bookbench.artifacts import manifest as manifest_file
from bookbench.artifacts import summary as summary_file
from bookbench.artifacts.files import write_json
from bookbench.config.scenarios import load_scenarios
from bookbench.pipeline import interrupts
from bookbench.pipeline.analyse import analyse_and_render
from bookbench.pipeline.compare import report_runs
from bookbench.pipeline.narration import narrate_to
from bookbench.pipeline.run import RunOptions, execute
from bookbench.pipeline.stack import database
from bookbench.report import charts, render

CAPACITY_FORMAT_VERSION = 2  # 2: `stopped` (null for a whole measurement), a set's `incomplete`
SCENARIO = "capacity"
BUSY_CORES = 0.5  # other processes' mean cores during the steps above which the headline says the machine was busy
MIN_RPS = 1.0  # the search halves the rate no further


@dataclass(frozen=True)
class CapacityPlan:
    sets: list[str]
    start_rps: float
    max_rps: float
    step_s: float
    bisections: int
    scenario_file: Path
    dataset_overrides: dict[str, int]
    folder: Path
    allow_remote: bool
    argv: list[str]
    target: str | None = None  # a target profile (None: the reference service's)
    target_url: str | None = None  # a running deployment instead of the reference service bookbench starts


def limits(plan: CapacityPlan) -> dict[str, float]:
    """The P95 and error-rate limits a step must hold: scenarios.yaml's global thresholds."""
    spec = load_scenarios(plan.scenario_file)
    merged = judge.effective_limits(spec.thresholds, SCENARIO)
    return {"p95_ms": merged.get("p95_ms", 500.0), "error_rate": merged.get("error_rate", 0.001)}


def _step_file(plan: CapacityPlan, rate: float) -> Path:
    """The user's scenarios.yaml with one open-model scenario at `rate` (same dataset, task mix, thresholds)."""
    raw = yaml.safe_load(plan.scenario_file.read_text())
    warmup = min(2.0, plan.step_s / 4)
    raw["scenarios"] = {SCENARIO: {
        "description": f"open model at {rate:g} requests/s (bookbench capacity)", "warmup_s": warmup,
        "arrivals": "poisson", "max_in_flight": 1000,
        "stages": [{"duration_s": plan.step_s + warmup, "arrival_rate": rate}]}}
    thresholds = raw.get("thresholds") or {}
    thresholds["per_scenario"] = {}
    raw["thresholds"] = thresholds
    return capacity_steps.write_step(plan.folder, rate, raw)


def _holds(sc: dict[str, Any], lim: dict[str, float]) -> tuple[bool, str]:
    om = sc.get("open_model") or {}
    p95 = (om.get("latency_from_intended_ms") or {}).get("p95")
    if not sc["requests"] or p95 is None:
        return False, "no request answered"
    if om.get("dropped"):
        return False, f"{om['dropped']:,} arrivals dropped (no free capacity)"
    if p95 > lim["p95_ms"]:
        return False, f"P95 {p95:.0f} ms > {lim['p95_ms']:g} ms"
    if sc["error_rate"] > lim["error_rate"]:
        return False, f"error rate {100 * sc['error_rate']:.2f} % > {100 * lim['error_rate']:.2f} %"
    return True, f"P95 {p95:.0f} ms"


def search(start: float, max_rps: float, bisections: int, holds: Callable[[float], bool]
           ) -> tuple[float | None, float | None]:
    """(highest rate that held, lowest that broke): double from `start` while it holds (never past `max_rps`), or
    halve while it breaks (down to MIN_RPS), then `bisections` midpoints between the two. (None, x): broke even at
    MIN_RPS; (x, None): never broke up to `max_rps`."""
    good: float | None = None
    bad: float | None = None
    rate = start
    if not holds(rate):
        bad = rate
        while rate / 2 >= MIN_RPS:
            rate /= 2
            if holds(rate):
                good = rate
                break
            bad = rate
    else:
        good, rate = rate, rate * 2
        while rate <= max_rps:
            if holds(rate):
                good, rate = rate, rate * 2
            else:
                bad = rate
                break
    for _ in range(bisections):
        if good is None or bad is None:
            break
        middle = round((good + bad) / 2, 1)
        if holds(middle):
            good = middle
        else:
            bad = middle
    return good, bad


class _Stopped(Exception):
    """A step's run did not complete (interrupted, failed): the search ends, the steps measured are kept."""

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__(record.get("reason"))
        self.record = record


def measure(plan: CapacityPlan, dsn: str | None, data_dir: Path | None, console: Console) -> dict[str, Any]:
    """Every set's search; a step that is interrupted or fails ends the whole measurement, and the result then
    holds the steps measured so far, the stopped set marked incomplete, and `stopped` (where and why)."""
    lim = limits(plan)
    anchor = dt.datetime.now(dt.UTC).date()
    per_set: dict[str, Any] = {}
    where = "before the first step"
    with database(dsn, data_dir) as url:
        for name in plan.sets:
            steps: list[dict[str, Any]] = []

            def step(rate: float, set_name: str = name, steps: list[dict[str, Any]] = steps) -> bool:
                nonlocal where
                where = f"{set_name} at {rate:g} requests/s"
                console.rule(f"[bold]{set_name}: {rate:g} requests/s[/]")
                outcome = execute(RunOptions(
                    scenarios_path=_step_file(plan, rate), scenarios=[SCENARIO], index_set=set_name,
                    dataset_overrides=plan.dataset_overrides, out=plan.folder / "runs", dsn=url, anchor=anchor,
                    allow_remote=plan.allow_remote, checks=False, notifications=False, argv=plan.argv,
                    own_database=dsn is None, target=plan.target, target_url=plan.target_url), narrate_to(console))
                if outcome.status != "completed":
                    report_runs([outcome.run_dir], console)
                    raise _Stopped({"status": outcome.status, "reason": outcome.reason, "at": where,
                                    "run": str(outcome.run_dir)})
                run_dir = outcome.run_dir
                analyse_and_render(run_dir)
                sc = summary_file.read(run_dir).model_dump()["scenarios"][SCENARIO]
                ok, why = _holds(sc, lim)
                om = sc.get("open_model") or {}
                steps.append({"rate": rate, "ok": ok, "why": why, "requests": sc["requests"],
                              "p95_ms": (om.get("latency_from_intended_ms") or {}).get("p95"),
                              "service_p95_ms": sc["latency_ms"]["p95"], "error_rate": sc["error_rate"],
                              "dropped": om.get("dropped", 0), "throughput_rps": sc["throughput_rps"],
                              "run": str(outcome.run_dir),
                              # the machine around the step: a capacity found under other work is that machine's
                              "outside_cores": machine.interference_summary(
                                  manifest_file.read(outcome.run_dir)).outside_cores,
                              "generator_saturated": bool(sc.get("generator_saturated"))})
                console.print(f"  {set_name} at {rate:g}/s: {'holds' if ok else 'BREAKS'} ({why})")
                return ok

            try:
                good, bad = search(plan.start_rps, plan.max_rps, plan.bisections, step)
            except (_Stopped, KeyboardInterrupt) as stop:
                # KeyboardInterrupt: between two steps (a step's own Ctrl-C ends its run as `interrupted`)
                record = stop.record if isinstance(stop, _Stopped) else {
                    "status": "interrupted", "reason": interrupts.reason(), "at": where, "run": None}
                per_set[name] = {"steps": sorted(steps, key=lambda s: s["rate"]), "max_rps": None,
                                 "breaks_at": None, "incomplete": True}
                return {"limits": lim, "sets": per_set, "stopped": record}
            per_set[name] = {"steps": sorted(steps, key=lambda s: s["rate"]), "max_rps": good, "breaks_at": bad,
                             "incomplete": False}
    return {"limits": lim, "sets": per_set, "stopped": None}


def stopped_words(result: dict[str, Any]) -> str | None:
    """Where and why the measurement stopped early, in one sentence; None for a whole measurement."""
    stopped = result.get("stopped")
    if not stopped:
        return None
    verb = "failed" if stopped["status"] == "failed" else f"was {stopped['status']}"
    why = f": {stopped['reason']}" if stopped.get("reason") else ""
    return (f"This capacity search {verb} at {stopped['at']}{why}. The steps measured before are shown; a set "
            "marked incomplete has no answer, and the sets after it were not measured.")


def headline(result: dict[str, Any]) -> str:
    lim = result["limits"]
    parts = []
    for name, r in result["sets"].items():
        if r.get("incomplete"):
            held = [s["rate"] for s in r["steps"] if s["ok"]]
            parts.append(f"{name} incomplete (stopped; " + (f"held up to {max(held):g}/s so far)" if held
                                                           else "no step held before it stopped)"))
        elif r["max_rps"] is None:
            parts.append(f"{name} breaks even at {r['breaks_at']:g}/s ({r['steps'][0]['why']})")
        elif r["breaks_at"] is None:
            parts.append(f"{name} holds up to the highest rate tried, {r['max_rps']:g}/s")
        else:
            parts.append(f"{name} {r['max_rps']:g}-{r['breaks_at']:g}/s")
    text = (f"Highest arrival rate within P95 {lim['p95_ms']:g} ms (from the intended send time) and "
            f"{100 * lim['error_rate']:g} % errors: " + "; ".join(parts) + ".")
    rates = {n: r["max_rps"] for n, r in result["sets"].items() if r["max_rps"]}
    if len(rates) > 1:
        first, best = next(iter(rates)), max(rates, key=lambda n: rates[n])
        if best != first:
            text += f" {best}'s highest rate is {wording.change(rates[best] / rates[first])} than {first}'s."
    return text + _machine_words(result)


def _machine_words(result: dict[str, Any]) -> str:
    """What the figures are worth on this machine: other work during the steps, a generator that was the
    bottleneck (then a step's latencies measure Locust, not the service)."""
    steps = [s for r in result["sets"].values() for s in r["steps"]]
    cores = [float(s["outside_cores"]) for s in steps if s.get("outside_cores") is not None]
    text = ""
    # a quarter of a 2-core machine's CPU taken by others moves a capacity figure by more than the search's step
    if cores and statistics.fmean(cores) > BUSY_CORES:
        text += (f" Other processes used {statistics.fmean(cores):.2f} cores on average during the steps (at most "
                 f"{max(cores):.2f}): these rates hold for this machine under that load, not comparable with a "
                 "quiet machine.")
    saturated = sorted({s["rate"] for s in steps if s.get("generator_saturated")})
    if saturated:
        text += (f" At {', '.join(f'{r:g}/s' for r in saturated)} the load generator was the bottleneck: those "
                 "steps measure Locust, not the service.")
    return text


def write(plan: CapacityPlan, result: dict[str, Any]) -> Path:
    result = {"format_version": CAPACITY_FORMAT_VERSION, **result, "headline": headline(result)}
    write_json(plan.folder / "capacity.json", result)
    chart = charts.capacity_curves({n: [(s["rate"], s["p95_ms"]) for s in r["steps"] if s["p95_ms"]]
                                    for n, r in result["sets"].items()},
                                   {n: r["max_rps"] for n, r in result["sets"].items()}, result["limits"]["p95_ms"])
    links = {s["run"]: os.path.relpath(Path(s["run"]) / "report.html", plan.folder)
             for r in result["sets"].values() for s in r["steps"]}
    stopped = result.get("stopped")
    stopped_link = os.path.relpath(Path(stopped["run"]) / "report.html", plan.folder) \
        if stopped and stopped.get("run") else None
    html = render.jinja().get_template("capacity.html.j2").render(
        r=result, chart=chart, links=links, generated=render.now(), step_s=plan.step_s,
        stopped=stopped_words(result), stopped_link=stopped_link,
        method="open-model steps (Poisson arrivals); P95 from each request's intended send time")
    return render.write_page(plan.folder / "capacity.html", html)
