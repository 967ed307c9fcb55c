"""What a reader sees on an 80-column terminal and in a CI log: help without type noise, whole index names, the end
table and the checks table (a terminal's width on a tty, their content's width piped, never a figure cut)."""

from __future__ import annotations

import io
import os
import pty
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from bookbench.analysis.judge import Judgement, judge
from bookbench.artifacts import summary as summary_file
from bookbench.artifacts.manifest import read as read_manifest
from bookbench.artifacts.run_files import read_checks
from bookbench.artifacts.summary import Summary
from bookbench.checks.base import CheckResult, not_applicable
from bookbench.checks.outcome import print_table
from bookbench.checks.runner import REFERENCE_ONLY
from bookbench.cli.terminal import summary_table
from bookbench.db import indexes
from bookbench.db.conn import run_with
from tests.budget import budget

DATA = Path(__file__).resolve().parents[1] / "data"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80", "TERM": "dumb"}
    return subprocess.run([sys.executable, "-m", "bookbench", *args],
                          capture_output=True, text=True, timeout=budget(120),
                          env=env)


def test_help_shows_no_bool_type_and_every_dataset_option_is_explained() -> None:
    from bookbench.cli.common import DATASET_HELP

    out = _cli("run", "--help").stdout
    assert "<bool>" not in out and "--quick" in out
    for option, text in DATASET_HELP.items():
        line = next(ln for ln in out.splitlines() if f"--{option.replace('_', '-')} " in ln)
        assert text.split()[0] in line, f"--{option} has no help: {line!r}"


def test_index_status_keeps_whole_names_at_80_columns(new_db: Callable[[], str]) -> None:
    from tests.conftest import seeded

    dsn = seeded(new_db())
    run_with(dsn, lambda c: indexes.apply(c, "seed"))
    done = _cli("indexes", "status", "--dsn", dsn)
    assert done.returncode == 0, done.stderr
    names = {s.name for s in run_with(dsn, indexes.status)}
    assert len(names) == 7
    for name in names:
        assert name in done.stdout, f"{name} cut:\n{done.stdout}"
    assert max(len(line) for line in done.stdout.splitlines()) <= 80


def _tty_console(width: int) -> tuple[Console, Callable[[], None]]:
    """A console on a real terminal (a pseudo-terminal) of `width` columns; nothing is written to it (captured),
    so the terminal's buffer never fills."""
    master, slave = pty.openpty()
    file = os.fdopen(slave, "w")

    def close() -> None:
        file.close()
        os.close(master)

    return Console(file=file, width=width, color_system=None, highlight=False, soft_wrap=True), close


def _log_console() -> Console:
    """bookbench's console as a CI log sees it: not a tty, at the 80 columns rich assumes there."""
    return Console(file=io.StringIO(), width=80, color_system=None, highlight=False, soft_wrap=True)


def _render(console: Console, renderable: Callable[[Console], None]) -> str:
    with console.capture() as captured:
        renderable(console)
    return captured.get()


def _demo_run() -> tuple[Summary, Judgement]:
    """A real run of `make demo` (its first compare run, at 1M appointments): figures up to 1,849.9 ms and
    endpoint names that a table drawn at 80 columns cut to "1,518…" and "lookupUpcomingAppointme…"."""
    run = DATA / "demo_run"
    summary = summary_file.read(run)
    return summary, judge(read_manifest(run), summary, read_checks(run / "checks.json"), None)


def _assert_whole(text: str, summary: Summary, j: Judgement) -> None:
    assert "\u2026" not in text, text
    rows = text.splitlines()
    for name, sc in summary.model_dump()["scenarios"].items():  # the figures as summary.json writes them
        at = next(i for i, ln in enumerate(rows) if ln.split()[:1] == [name])
        row = rows[at]
        lat = sc["latency_ms"]
        for figure in (f"{sc['requests']:,}", f"{lat['p50']:,.1f}", f"{lat['p95']:,.1f}", f"{lat['p99']:,.1f}",
                       f"{sc['throughput_rps']:,.1f}"):
            assert f" {figure} " in row, f"{figure} not whole in {row!r}"
        failed = sorted({v.metric for v in j.verdicts if v.scenario == name and v.failed})
        assert ("FAIL" in row) == bool(failed), row
        for k, (endpoint, e) in enumerate(sc["endpoints"].items(), start=1):
            # one line per endpoint under its scenario, its name and figures whole
            row = rows[at + k]
            assert row.split()[:1] == [endpoint], row
            assert f" {e['requests']:,} " in row and f" {e['latency_ms']['p95']:,.1f} " in row, row


def test_end_table_piped_keeps_every_figure_whole_and_a_terminal_its_width() -> None:
    summary, j = _demo_run()
    piped = _render(_log_console(), lambda c: c.print(summary_table(summary, j)))
    _assert_whole(piped, summary, j)
    # one line per scenario and per endpoint, plus title, blank, header, rule, blank
    assert len(piped.splitlines()) == 5 + sum(1 + len(sc.endpoints) for sc in summary.scenarios.values())
    assert max(len(line) for line in piped.splitlines()) > 80  # sized to its content, not to rich's 80
    console, close = _tty_console(80)
    try:
        on_terminal = _render(console, lambda c: c.print(summary_table(summary, j)))
    finally:
        close()
    assert max(len(line) for line in on_terminal.splitlines()) <= 80
    # too narrow for this table (85 columns): a long endpoint name folds onto a second line, no figure is cut
    assert "\u2026" not in on_terminal
    for sc in summary.scenarios.values():
        for e in (sc, *sc.endpoints.values()):
            lat = e.latency_ms
            assert f" {e.requests:,} " in on_terminal and f" {lat.p95:,.1f} " in on_terminal
            assert f" {lat.p99:,.1f} " in on_terminal and f" {e.throughput_rps:,.1f} " in on_terminal


def test_bookbench_report_piped_prints_the_known_runs_end_table_whole(tmp_path: Path) -> None:
    """The command as CI runs it: output to a pipe, no COLUMNS (rich then assumes 80; this table is wider)."""
    run = tmp_path / "known_run"
    shutil.copytree(DATA / "known_run", run)
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    done = subprocess.run([sys.executable, "-m", "bookbench", "report", str(run)], capture_output=True, text=True,
                          timeout=120, env=env)
    assert done.returncode == 1, done.stderr  # NO-GO: the known run breaks its limits
    summary = summary_file.read(run)
    table = done.stdout[:done.stdout.index("\n  FAIL ")]  # the failed figures' lines follow the table
    _assert_whole(table, summary, judge(read_manifest(run), summary, None, None))
    assert max(len(line) for line in table.splitlines()) > 80


def _checks() -> list[CheckResult]:
    """Every check of a real `bookbench check all` (make demo's JUnit, 38 checks in 7 suites)."""
    return [CheckResult(**r) for r in read_checks(DATA / "checks_all.json") or []]


def test_checks_table_piped_has_one_line_per_check_with_its_whole_detail() -> None:
    results = _checks()
    text = _render(_log_console(), lambda c: print_table(results, c))
    assert "\u2026" not in text
    lines = text.splitlines()
    for r in results:
        # the check's own line holds its suite, name, verdict, time and whole detail (repeated names such as
        # "basic appointment booking" in smoke and uat each have theirs)
        own = [ln for ln in lines if f" {r.name} " in ln and ln.split()[1:2] == [r.suite] and r.detail in ln]
        assert len(own) >= 1, f"{r.suite} / {r.name} is not on one line:\n{text}"
        assert {"pass": "PASS", "fail": "FAIL", "skipped": "NOT RUN"}[r.status] in own[0]
    # title, top rule, header, rule, the checks, bottom rule, the count line
    assert len(lines) == len(results) + 6, text
    assert lines[-1].startswith(f"{len(results)}/{len(results)} passed (smoke 4/4, ")


def test_checks_table_on_an_80_column_terminal_folds_text_and_keeps_the_short_columns() -> None:
    results = _checks()
    console, close = _tty_console(80)
    try:
        text = _render(console, lambda c: print_table(results, c))
    finally:
        close()
    table = text.splitlines()[:-1]  # the count line after it is one line the terminal wraps
    assert max(len(line) for line in table) <= 80
    assert "\u2026" not in text  # the suite, result and time columns are never cut; name and detail fold
    assert text.count("PASS") == len(results) and "6,406 ms" in text


def test_a_detail_with_newlines_and_brackets_stays_one_plain_row() -> None:
    result = CheckResult("hostile", "http: odd answer", False, "got 500\nbody b'[/red] [bold]x'\n", 0.002)
    skipped = not_applicable("preflight", "postgrest", REFERENCE_ONLY["preflight"])
    text = _render(_log_console(), lambda c: print_table([result, skipped], c))
    row = next(ln for ln in text.splitlines() if "http: odd answer" in ln)
    assert "got 500 / body b'[/red] [bold]x'" in row and "FAIL" in row
    row = next(ln for ln in text.splitlines() if ln.split()[1:2] == ["preflight"])
    assert "NOT RUN" in row and skipped.detail in row
    assert text.splitlines()[-1].startswith("0/1 passed, 1 not run")


def test_make_demo_runs_every_check_suite_once() -> None:
    """`make demo` checks the suites compare's runs do not (compare's runs check the others against each set's
    service, recorded in the demo run's checks.json): together every suite of `check all`, none twice."""
    import re

    from bookbench.checks.runner import SUITES

    makefile = (DATA.parents[1] / "Makefile").read_text()
    suites = re.search(r"^DEMO_SUITES := (.*)$", makefile, re.M)
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert suites is not None and recipe is not None
    demo = set(suites.group(1).split())
    assert [ln.split()[1:3] for ln in recipe.group(1).splitlines()] == [["check", "$(DEMO_SUITES)"], ["compare"]]
    by_compare = {r["suite"] for r in read_checks(DATA / "demo_run" / "checks.json") or []}
    assert by_compare == {"smoke", "uat", "stress", "preflight"}
    assert not demo & by_compare and demo | by_compare == set(SUITES)
