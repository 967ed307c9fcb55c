"""report.html's "Where the time goes" from a run folder with database evidence: the known run plus synthetic
db/statements.json and db/waits.json built from their models (known inputs, so the budget's figures are known);
a foreign API's run (no service timing), a run from before the evidence existed, and an unreadable file; and the
real page in headless Chromium at 1280 px, held to the checks every page passes (tests/report/test_pages.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bookbench.artifacts import explain
from bookbench.artifacts import summary as summary_file
from bookbench.artifacts.db_evidence import (
    WAIT_CATEGORIES,
    ScenarioStatements,
    ScenarioWaits,
    ServiceTiming,
    StatementDelta,
    StatementsFile,
    TimingBand,
    WaitsFile,
    WaitShares,
    Window,
    read_waits,
    write_statements,
    write_waits,
)
from bookbench.artifacts.folder import RunFolder
from bookbench.pipeline import analyse
from tests.report.browser import CHROMIUM, Browser
from tests.report.test_pages import _CHART_GEOMETRY, _check_page

KNOWN = Path(__file__).resolve().parents[1] / "data" / "known_run"
NOT_RECORDED = "Database evidence (where the time goes: statements, wait events, latency budget) was not recorded"
# the busy observations: 25 % waiting on the advisory lock, none on other locks
COUNTS = {"CPU": 120, "Lock:advisory": 50, "IO:DataFileRead": 20, "Client:ClientRead": 10}


def _statement(label: str, total_ms: float, calls: int, hit: int, read: int, toplevel: bool = True,
               query: str = "SELECT ...") -> StatementDelta:
    return StatementDelta(queryid=str(abs(hash(label))), label=label, own=label != "other", toplevel=toplevel,
                          query=query, calls=calls, total_exec_ms=total_ms, mean_exec_ms=total_ms / calls, rows=calls,
                          shared_blks_hit=hit, shared_blks_read=read, shared_blks_dirtied=0, temp_blks_read=0,
                          temp_blks_written=0, wal_bytes=0, plans=None, total_plan_ms=None)


STATEMENTS = [_statement("booking function", 6000.0, 400, 572_000, 400),
              _statement("conflict check", 5200.0, 400, 571_600, 200, toplevel=False),
              _statement("availability", 900.0, 300, 3000, 0),
              _statement("upcoming lookup", 400.0, 200, 800, 0),
              _statement("cancel", 120.0, 100, 400, 0),
              _statement("other", 30.0, 10, 0, 0, query="SELECT count(*) FROM pg_class WHERE relname = $1"),
              _statement("outbox claim", 1.0, 5, 10, 0),
              _statement("bookbench: wait sampler", 0.5, 1500, 0, 0)]


def _run(dest: Path, service: bool = True) -> Path:
    """The known run with db evidence for its one scenario, `known`, and the conflict check's EXPLAIN file."""
    shutil.copytree(KNOWN, dest)
    folder = RunFolder(dest)
    folder.statements.parent.mkdir(exist_ok=True)
    window = Window(start=1_700_000_001.0, end=1_700_000_100.0, note="nearest snapshots: +0.3 s, -0.2 s")
    write_statements(folder.statements, StatementsFile(
        source="pg_stat_statements 1.11, track = all, on the embedded server",
        scenarios={"known": ScenarioStatements(window=window, statements=STATEMENTS)}))
    total = sum(COUNTS.values())
    shares = WaitShares(hz=15.0, instants=1500, observations=total, busy_backends_mean=total / 1500,
                        counts={c: COUNTS.get(c, 0) for c in WAIT_CATEGORIES},
                        shares={c: COUNTS.get(c, 0) / total for c in WAIT_CATEGORIES})
    timing = ServiceTiming(requests=1000, handler_ms_mean=20.0, pool_wait_ms_mean=3.0, db_ms_mean=12.0, bands={
        "p50": TimingBand(requests=100, handler_ms=12.0, pool_wait_ms=2.0, db_ms=8.0),
        "p95": TimingBand(requests=20, handler_ms=60.0, pool_wait_ms=10.0, db_ms=40.0)})
    write_waits(folder.waits, WaitsFile(scenarios={"known": ScenarioWaits(
        window=window, waits=shares, service=timing if service else None,
        service_not_measured=None if service else "not measured: the target has no /stats/timing (a foreign API)")}))
    explain.write(folder.explain_dir, "conflict_check", "SELECT 1 FROM appointment_conflicts($1, $2, $3, $4)",
                  [{"Plan": {"Node Type": "Result"}}], {})
    analyse.analyse_and_render(dest)
    return dest


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("evidence") / "run")


def _section(run: Path) -> str:
    html = (run / "report.html").read_text()
    start = html.index('<h3 id="time-known">Where the time goes</h3>')
    return html[start:html.index("<h3>Errors</h3>", start)]


def test_the_budget_table_shows_the_known_parts(run: Path) -> None:
    latency = summary_file.read(run).scenarios["known"].latency_ms
    assert latency.p50 is not None and latency.p95 is not None
    html = _section(run)
    # median: pool 2.0, connection held 8.0 of which 25 % lock wait; P95: pool 10.0, held 40.0
    assert (f'<tr><td class="l">median</td><td>{latency.p50:.1f}</td><td>2.0</td><td>2.0</td><td>6.0</td>'
            f"<td>{latency.p50 - 10.0:.1f}</td></tr>") in html
    assert (f'<tr><td class="l">P95</td><td>{latency.p95:.1f}</td><td>10.0</td><td>10.0</td><td>30.0</td>'
            f"<td>{latency.p95 - 50.0:.1f}</td></tr>") in html
    assert "<svg" in html and "Method: From the service&#39;s own timing (1,000 requests in the window)" in html
    assert "(25.0 %: Lock:advisory 25.0 %, other locks 0.0 %; 200 busy observations at 15 Hz)" in html
    assert "not measured" not in html


def test_the_statements_and_waits_tables(run: Path) -> None:
    html = _section(run)
    # the top 6 by total execution time: the outbox claim (1 ms) is the 7th
    assert "(the 6 with the largest total execution time; pg_stat_statements 1.11, track = all" in html
    assert "outbox claim" not in html
    rows = html[html.index("<th>hit ratio</th>"):]
    order = [rows.index(f'<td class="l">{label}') for label in
             ("booking function", "conflict check", "availability", "upcoming lookup", "cancel", "other")]
    assert order == sorted(order)
    # booking function: 400 calls, 15.00 ms each, 1,430 blocks hit and 1 read per call, 99.9 % hits
    assert ("<td>400</td><td>6,000.0</td><td>15.00</td>\n<td>1,430.0</td>\n<td>1.0</td>\n<td>99.9 %</td>") in rows
    assert "(inside a function: its time is in its caller's too)" in rows
    assert "<code class=\"small\">SELECT count(*) FROM pg_class WHERE relname = $1</code>" in rows
    # a plan link only where explain/ holds one: the conflict check's
    assert rows.count("EXPLAIN</a>") == 1 and '<a href="explain/conflict_check.json">EXPLAIN</a>' in rows
    assert (run / "explain" / "conflict_check.json").exists()
    assert "Window: nearest snapshots: +0.3 s, -0.2 s." in html
    waits = html[html.index("<b>Wait events of the service's backends</b>"):]
    assert "(200 busy observations at 1,500 sampling instants, 15.0 Hz achieved; 0.13 backends busy" in waits
    assert "<td class=\"l\">share</td><td>60.0 %</td><td>25.0 %</td><td>0.0 %</td>" in waits
    assert "The service timed 1,000 requests in the window: handler 20.0 ms, pool wait 3.0 ms" in waits


def test_a_foreign_api_shows_pool_wait_as_not_measured(tmp_path: Path) -> None:
    run = _run(tmp_path / "foreign", service=False)
    html = _section(run)
    latency = summary_file.read(run).scenarios["known"].latency_ms
    requests = summary_file.read(run).scenarios["known"].requests
    per_request = (6000.0 + 900.0 + 400.0 + 120.0 + 30.0 + 1.0) / requests  # top-level statements only
    assert (f"over 6 statements, pg_stat_statements; bookbench&#39;s own measuring left out) divided by the "
            f"scenario&#39;s {requests:,} requests") in html
    assert (f'<tr><td class="l">median</td><td>{latency.p50:.1f}</td><td><span class="nodata">not measured</span>'
            f"</td><td>{0.25 * per_request:.1f}</td><td>{0.75 * per_request:.1f}</td>") in html
    assert "pool wait: not measured: the target is not the reference service" in html
    assert ("Service timing (pool wait per request): not measured: the target has no /stats/timing (a foreign API)"
            in html)
    assert "<td>0.0</td>" not in html.split("<b>Statements")[0]  # nothing unmeasured drawn as zero


def test_partial_sampling_an_empty_service_window_and_auto_explain_are_said(tmp_path: Path) -> None:
    run = _run(tmp_path / "partial")
    folder = RunFolder(run)
    waits = read_waits(folder.waits)
    assert waits is not None
    known = waits.scenarios["known"]
    assert known.waits is not None
    known.waits.note = "sampling ended 12.3 s into the window: the connection closed"
    known.service = ServiceTiming(requests=0, handler_ms_mean=None, pool_wait_ms_mean=None, db_ms_mean=None, bands={})
    write_waits(folder.waits, waits)
    folder.auto_explain("known").write_text("{}\n")
    analyse.analyse_and_render(run)
    html = _section(run)
    assert "⚠ sampling ended 12.3 s into the window: the connection closed" in html
    assert ("Service timing (pool wait per request): not measured: the service timed no request in the window."
            in html)
    assert '<a href="db/known_auto_explain.jsonl">db/known_auto_explain.jsonl</a>' in html
    # no band: the budget falls back to the statements' mean, and says why
    assert "Method: The target reported no per-request timing (not measured: the service timed no request" in html


def test_a_run_from_before_the_evidence_renders_as_before_with_one_line(tmp_path: Path) -> None:
    run = tmp_path / "old"
    shutil.copytree(KNOWN, run)
    analyse.analyse_and_render(run)
    html = (run / "report.html").read_text()
    assert html.count(NOT_RECORDED) == 1 and "Where the time goes" not in html


def test_an_unreadable_evidence_file_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    run = _run(tmp_path / "bad")
    RunFolder(run).waits.write_text('{"format_version": 1, "scenarios": {"known": {"bogus": 1}}')
    analyse.analyse_and_render(run)
    html = _section(run)
    assert html.count("is not valid JSON (line 1)") == 2  # wait events and service timing each say why
    assert "Method: The target reported no per-request timing (not measured: " in html  # statements still count
    assert NOT_RECORDED not in (run / "report.html").read_text()


def test_a_plan_link_only_where_explain_holds_the_file(tmp_path: Path) -> None:
    from bookbench.analysis.budget import top_statements
    from bookbench.report.render import _explain_links

    folder = RunFolder(tmp_path)
    explain.write(folder.explain_dir, "upcoming", "SELECT 1", [{"Plan": {"Node Type": "Result"}}], {})
    rows = top_statements(ScenarioStatements(window=None, statements=[
        _statement("upcoming lookup", 3.0, 1, 0, 0), _statement("upcoming lookup #2", 2.0, 1, 0, 0),
        _statement("availability", 1.0, 1, 0, 0)]))
    assert _explain_links(folder, rows) == {"upcoming lookup": "explain/upcoming.json",
                                            "upcoming lookup #2": "explain/upcoming.json"}


def test_the_explain_names_are_those_db_evidence_writes() -> None:
    """The links name files db/evidence.py really writes (its statements' names), so no link points nowhere."""
    from bookbench.config.dataset import DatasetParams
    from bookbench.db.evidence import _statements
    from bookbench.report.render import EXPLAIN_NAMES

    assert set(EXPLAIN_NAMES.values()) <= set(_statements(DatasetParams(orgs=1, contacts=10, appointments=0)))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_the_page_reads_at_1280_px_in_a_real_browser(run: Path, tmp_path: Path) -> None:
    foreign = _run(tmp_path / "foreign", service=False)  # its chart has a legend entry for the unmeasured part
    browser = Browser(tmp_path / "profile")
    try:
        for path in (run / "report.html", foreign / "report.html"):
            page = _check_page(browser, "report", path)
            charts = page.evaluate(_CHART_GEOMETRY)
            budget = page.evaluate("document.querySelectorAll('#time-known + .charts svg g[id^=legend_]').length")
            assert budget == 1, "the budget chart has no legend of its own"
            assert charts["narrow"] == [] and charts["overlaps"] == [], charts
    finally:
        browser.close()
