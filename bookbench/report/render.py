"""HTML pages from the analysis's models (jinja2 templates shipped in the package): rendering only."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemBytecodeCache, FileSystemLoader, StrictUndefined, select_autoescape
from jinja2.bccache import Bucket

from bookbench.analysis import judge, review
from bookbench.analysis.budget import (
    LatencyBudget,
    NoBudget,
    StatementRow,
    latency_budget,
    not_measured,
    top_statements,
)
from bookbench.analysis.inference import DEFAULT_RUN_SD
from bookbench.artifacts import pages
from bookbench.artifacts.db_evidence import (
    WAIT_CATEGORIES,
    ScenarioStatements,
    ServiceTiming,
    StatementsFile,
    WaitsFile,
    WaitShares,
    Window,
    read_statements,
    read_waits,
)
from bookbench.artifacts.folder import RunFolder
from bookbench.artifacts.manifest import Manifest
from bookbench.artifacts.summary import Summary
from bookbench.config.scenarios import Thresholds
from bookbench.errors import ArtifactError
from bookbench.report import charts, soak

TEMPLATES = Path(__file__).with_name("templates")
# a statement's label (db/statements.json) -> its file in explain/ (the names of db/evidence.py's statements)
EXPLAIN_NAMES = {"conflict check": "conflict_check", "availability": "availability", "upcoming lookup": "upcoming",
                 "cancel": "cancel", "booking insert": "insert"}


class _TemplateCache(FileSystemBytecodeCache):
    """Compiled templates kept between commands: every command that writes a page would otherwise compile its
    templates from source again (~0.1 CPU-s a page, measured on a small run's report). jinja2 keys each entry by
    the template's file and checks it against the source's checksum, so an edited template is compiled afresh."""

    def dump_bytecode(self, bucket: Bucket) -> None:
        # a cache that cannot be written (a full or read-only disk) costs the next page its compile, no more
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _template_cache() -> _TemplateCache | None:
    folder = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "bookbench" / "templates"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    return _TemplateCache(str(folder))


def jinja() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      bytecode_cache=_template_cache())
    env.filters["when"] = when
    # the spread an uncalibrated comparison assumes: the page says the value the analysis used, not a copy
    env.globals["default_run_sd"] = DEFAULT_RUN_SD
    env.globals["index_set_label"] = judge.index_set_label
    return env


def when(iso: str) -> str:
    """An ISO timestamp as a reader wants it: "2026-11-23 14:00:11 UTC" (no microseconds, no offset)."""
    try:
        stamp = dt.datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return str(iso)
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.UTC)
    return stamp.strftime("%Y-%m-%d %H:%M:%S UTC")


def _charts(summary: Summary, thresholds: Thresholds) -> dict[str, Any]:
    """The page's SVG charts by kind, then scenario (the percentile bars: one chart for every scenario)."""
    out: dict[str, Any] = {"latency": {}, "throughput": {}, "distribution": {}}
    for name, sc in summary.scenarios.items():
        n = sc.requests
        out["latency"][name] = charts.latency_over_time(
            sc.timeseries, sc.warmup_s, f"{name}: latency percentiles per second (n={n:,})",
            judge.effective_limits(thresholds, name).get("p95_ms"))
        out["throughput"][name] = charts.throughput_over_time(sc.timeseries, f"{name}: throughput and errors")
        out["distribution"][name] = charts.distribution(sc.distribution, f"{name}: latency distribution (n={n:,})",
                                                        sc.latency_ms.p95)
        if sc.notifications:
            out.setdefault("backlog", {})[name] = charts.backlog_over_time(
                sc.notifications, f"{name}: notification backlog (outbox rows not yet delivered)")
    out["bars"] = charts.percentile_bars(summary.scenarios, thresholds.global_.p95_ms)
    return out


@dataclass
class Evidence:
    """One scenario's "Where the time goes": its latency budget and chart, its costliest statements with links to
    their plans, the wait-event shares and the service's timing; each part that is missing says why."""
    budget: LatencyBudget | NoBudget
    chart: str | None = None
    source: str | None = None  # how pg_stat_statements was read (StatementsFile.source)
    window: Window | None = None
    statements: list[StatementRow] = field(default_factory=list)
    statements_reason: str | None = None
    explain: dict[str, str] = field(default_factory=dict)  # label -> href of its EXPLAIN file
    waits: WaitShares | None = None
    waits_reason: str | None = None
    categories: tuple[str, ...] = WAIT_CATEGORIES
    service: ServiceTiming | None = None
    service_reason: str | None = None
    auto_explain: str | None = None  # href of the plans auto_explain logged during the scenario
    auto_explain_count: str | None = None  # "12 plans" or "200 plans of 340 logged"


def _read_evidence(folder: RunFolder) -> tuple[StatementsFile | str | None, WaitsFile | str | None]:
    """Each file, or why it could not be read (one line, never a traceback), or None when it was never written."""
    out: list[StatementsFile | WaitsFile | str | None] = []
    for path, reader in ((folder.statements, read_statements), (folder.waits, read_waits)):
        try:
            out.append(reader(path))
        except ArtifactError as exc:
            out.append(not_measured(str(exc), ""))
    statements, waits = out
    assert not isinstance(statements, WaitsFile) and not isinstance(waits, StatementsFile)
    return statements, waits


def evidence(run_dir: Path, summary: Summary) -> dict[str, Evidence] | None:
    """Per scenario, the database evidence as the report shows it; None for a run folder without it (older runs)."""
    folder = RunFolder(run_dir)
    statements, waits = _read_evidence(folder)
    if statements is None and waits is None:
        return None
    out = {}
    for name, sc in summary.scenarios.items():
        st = statements.scenarios.get(name) if isinstance(statements, StatementsFile) else None
        wt = waits.scenarios.get(name) if isinstance(waits, WaitsFile) else None
        ev = Evidence(budget=latency_budget(sc, st, wt))
        if isinstance(ev.budget, LatencyBudget):
            ev.chart = charts.latency_budget([(r.name, r.client_ms, r.parts()) for r in ev.budget.rows],
                                             f"{name}: where a request's time goes (n={sc.requests:,})")
        if st is not None and st.not_measured is None:
            ev.statements, ev.window = top_statements(st), st.window
            assert isinstance(statements, StatementsFile)
            ev.source = statements.source
        else:
            ev.statements_reason = _missing(statements, st, "db/statements.json")
        ev.explain = _explain_links(folder, ev.statements)
        if wt is not None:
            ev.waits, ev.service, ev.window = wt.waits, wt.service, ev.window or wt.window
            ev.waits_reason = None if wt.waits else not_measured(wt.waits_not_measured, "wait events were not sampled")
            ev.service_reason = None if wt.service else not_measured(wt.service_not_measured, "no service timing")
        else:
            ev.waits_reason = ev.service_reason = _missing(waits, wt, "db/waits.json")
        if folder.auto_explain(name).exists():
            ev.auto_explain = str(folder.auto_explain(name).relative_to(run_dir))
            ev.auto_explain_count = _plans(st)
        out[name] = ev
    return out


def _explain_links(folder: RunFolder, rows: list[StatementRow]) -> dict[str, str]:
    """label -> explain/<name>.json, for the statements whose plan file exists ("conflict check #2", the same text
    run by another role or inside a function, links to the one plan of its statement)."""
    out = {}
    for r in rows:
        name = EXPLAIN_NAMES.get(r.label.split(" #")[0])
        if name and (folder.explain_dir / f"{name}.json").exists():
            out[r.label] = f"explain/{name}.json"
    return out


def _plans(st: ScenarioStatements | None) -> str | None:
    # read by name: the counts are optional fields of the statements file (absent from older ones)
    kept, found = getattr(st, "auto_explain_plans", None), getattr(st, "auto_explain_found", None)
    if kept is None:
        return None
    return f"{kept:,} plans" + (f" of {found:,} logged" if found is not None and found > kept else "")


def _missing(file: object, entry: object, rel: str) -> str:
    if isinstance(file, str):
        return file  # the file could not be read: its reason
    if file is None:
        return f"not measured: this run folder has no {rel}"
    if entry is None:
        return f"not measured: {rel} has no entry for this scenario"
    return not_measured(getattr(entry, "not_measured", None), "pg_stat_statements was not read")


def report_page(run_dir: Path, manifest: Manifest, summary: Summary, j: judge.Judgement,
                checks: list[dict[str, Any]] | None) -> Path:
    total = sum(sc.requests for sc in summary.scenarios.values())
    html = jinja().get_template("report.html.j2").render(
        # the page lists each failed item under the banner: the banner's sentence only counts them
        manifest=manifest, summary=summary, j=j, headline=j.headline(total, len(summary.scenarios), listed=0),
        fmt=judge.format_value, charts=_charts(summary, judge.rules(manifest)[0]), checks=checks,
        evidence=evidence(run_dir, summary), soak=soak.sections(run_dir, summary, judge.rules(manifest)[0]),
        generated=now(), method=summary.method)
    return write_page(run_dir / "report.html", html)


def review_html(run_dir: Path, manifest: Manifest, rv: review.Review, baseline: Summary | None,
                method: str) -> Path:
    html = jinja().get_template("review.html.j2").render(
        manifest=manifest, review=rv, baseline=baseline, alert_rules=judge.rules(manifest)[2], fmt=judge.format_value,
        generated=now(), method=method)
    return write_page(run_dir / "review.html", html)


def write_page(path: Path, html: str) -> Path:
    return pages.write(path, html)


def now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
