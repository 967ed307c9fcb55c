"""The end of a run on the terminal: per scenario and endpoint, the report's exact figures and verdicts, each
failed figure once, and the decision (shared by `bookbench run` and `bookbench report`; not a command itself)."""

from __future__ import annotations

from pathlib import Path

from rich import box

from bookbench.analysis.judge import Judgement, describe, describe_item
from bookbench.artifacts.summary import Summary
from bookbench.cli.common import console
from bookbench.tables import ContentTable

VERDICT_STYLE = {"pass": "[green]PASS[/]", "fail": "[red]FAIL[/]", "not run": "[yellow]NOT RUN[/]"}
DECISION_STYLE = {"GO": "[green]GO[/]", "NO-GO": "[red]NO-GO[/]", "INCOMPLETE": "[yellow]INCOMPLETE[/]"}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _errors(failures: int, requests: int) -> str:
    if not failures:
        return "0"
    return f"{failures:,} ({100 * failures / requests:.1f}%)" if requests else f"{failures:,}"


def summary_table(summary: Summary, j: Judgement) -> ContentTable:
    """One bold row per scenario (its verdict last), then one row per endpoint. Figures are summary.json's
    (after the warm-up), so they match report.html to the digit; piped to a log the table is as wide as its
    figures (bookbench.tables), never cut to "2,634…"."""
    table = ContentTable(title="after the warm-up; latency in ms, exact percentiles", title_justify="left",
                         box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1), collapse_padding=True)
    # on a terminal too narrow for every column, the name folds onto a second line; a figure is never cut
    table.add_column("scenario / endpoint", overflow="fold")
    for col in ("n", "P50", "P95", "P99", "req/s", "errors"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    for name, sc in summary.scenarios.items():
        lat = sc.latency_ms
        table.add_row(f"[bold]{name}[/]", f"{sc.requests:,}", _ms(lat.p50), _ms(lat.p95), _ms(lat.p99),
                      f"{sc.throughput_rps:,.1f}", _errors(sc.failures, sc.requests),
                      VERDICT_STYLE[j.scenario_status(name)])
        for endpoint, e in sc.endpoints.items():
            el = e.latency_ms
            table.add_row(f"  {endpoint}", f"{e.requests:,}", _ms(el.p50), _ms(el.p95), _ms(el.p99),
                          f"{e.throughput_rps:,.1f}", _errors(e.failures, e.requests), "", style="dim")
    return table


def notification_lines(summary: Summary) -> list[str]:
    """One line per scenario that measured Path B: SMS delay, what was lost, the backlog and the breaker."""
    out = []
    for name, sc in summary.scenarios.items():
        nt = sc.notifications
        if not nt:
            continue
        p95 = nt.sms.delay_s.p95
        drained = f"drained {nt.drain_s:.1f} s after the load" if nt.drain_s is not None else "NOT drained"
        opened = sum(b.openings for b in nt.breaker.values())
        out.append(f"  {name} notifications: SMS P95 {'-' if p95 is None else f'{p95:.1f} s'} · lost {nt.lost} of "
                   f"{nt.queued:,} · duplicates {nt.sms.duplicates + nt.calendar.duplicates}"
                   # a delivery repeated after a dispatcher died, answered by its idempotency key (not a duplicate)
                   + (f" · redelivered {nt.redelivered}" if nt.redelivered else "")
                   + f" · dead {nt.dead} · peak backlog {nt.backlog.peak:,}, {drained}"
                   + (f" · breaker opened {opened}x" if opened else ""))
    return out


def open_model_lines(summary: Summary) -> list[str]:
    """One line per open-model scenario: offered rate, dropped arrivals, both latencies."""
    out = []
    for name, sc in summary.scenarios.items():
        om = sc.open_model
        if not om:
            continue
        p95, p95i = sc.latency_ms.p95, om.latency_from_intended_ms.p95
        out.append(f"  {name} open model: offered {om.offered_rps:.1f}/s, dropped {om.dropped:,} · P95 "
                   f"{_ms(p95)} ms service, {_ms(p95i)} ms from the intended send time"
                   + (" · DIVERGED (sends late or waiting for capacity)" if om.diverged else ""))
    return out


def generator_lines(summary: Summary) -> list[str]:
    """One yellow line per scenario whose load generator was the bottleneck (a caveat, not a failure)."""
    return [f"  [yellow]{name}: the load generator was the bottleneck: {sc.generator_saturated_reason}; its "
            "latencies measure the generator, not the service[/]"
            for name, sc in summary.scenarios.items() if sc.generator_saturated]


def render_and_print(run_dir: Path, baseline: Path | None, html: bool = True) -> bool:
    """Judge the run and render report.html (unless html=False); print the per-scenario/endpoint table, one line
    per failed figure (however many rules it breaks) and the decision.
    False on NO-GO."""
    from bookbench.pipeline import analyse  # the analysis stage, loaded when a command asks for it

    out = analyse.analyse_and_render(run_dir, baseline, html=html)
    if out.summary.scenarios:
        console.print(summary_table(out.summary, out.judgement))
        for line in open_model_lines(out.summary) + notification_lines(out.summary) + generator_lines(out.summary):
            console.print(line)
    for group in out.judgement.failed_groups():  # one line per failed figure, naming every rule it breaks
        first = group[0]
        what = describe_item(group) if len(group) > 1 else f"{first.kind} {describe(first)}"
        console.print(f"  [red]{first.status.upper()}[/] {what}")
    for caveat in out.judgement.caveats:
        console.print(f"  [yellow]not complete:[/] {caveat}")
    page = out.page if out.page is not None else "not written (--no-report)"
    console.print(f"decision: {DECISION_STYLE[out.judgement.decision]} · report: {page}")
    return bool(out.judgement.decision != "NO-GO")
