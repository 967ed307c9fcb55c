"""report.html's "Soak" section from the known run plus a synthetic db/known_soak.jsonl: a short soak (probes every
10 s, the known run's 100 s of steady state) shows its P95 windows and first -> last values, its probes not drawn
(under a minute of them), and says it is too short to extrapolate per hour; probes a minute apart (5 minutes of them)
show their known slopes; summary.json holds the drift figures (no threshold), and the judge and the page read them
without fitting again (an old summary without them is measured again); the judge's drift line from a long synthetic
series; and the page in headless Chromium at 1280 px."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bookbench.analysis import drift, judge, limits
from bookbench.artifacts import soak
from bookbench.artifacts import summary as summary_file
from bookbench.artifacts.soak import Probe, TableProbe
from bookbench.artifacts.summary import DriftFigures, ScenarioSummary, TimePoint
from bookbench.config.scenarios import Thresholds
from bookbench.pipeline import analyse
from bookbench.report import render
from tests.report.browser import CHROMIUM, Browser
from tests.report.test_pages import _CHART_GEOMETRY, _check_page

KNOWN = Path(__file__).resolve().parents[1] / "data" / "known_run"


def _probe(i: int, every_s: float) -> Probe:
    # per probe: RSS +1 MB, the appointments table +2 MB, 100 more dead tuples, one autovacuum at the 4th probe
    return Probe(t=1_700_000_000.0 + every_s * i, rss_bytes=(100 + i) * 2**20, service_processes=1,
                 connections={"active": 3, "idle": 7 + i % 2},
                 tables={"appointments": TableProbe(total_bytes=(50 + 2 * i) * 2**20, table_bytes=(40 + 2 * i) * 2**20,
                                                    index_bytes=10 * 2**20, n_live_tup=1000, n_dead_tup=100 * i,
                                                    autovacuum_count=int(i >= 3), autoanalyze_count=0)},
                 outbox_pending=5)


def _run(dest: Path, probes: int, every_s: float = 10.0) -> Path:
    shutil.copytree(KNOWN, dest)
    path = soak.soak_file(dest, "known")
    path.parent.mkdir(exist_ok=True)
    for i in range(probes):
        soak.append(path, _probe(i, every_s))
    with path.open("a") as fh:
        fh.write('{"v": 1, "t": 17000')  # a last line cut by a kill: skipped
    analyse.analyse_and_render(dest)
    return dest


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("soak") / "run", probes=6)


def _section(run: Path) -> str:
    html = (run / "report.html").read_text()
    start = html.index('<h3 id="soak-known">Soak</h3>')
    return html[start:html.index("<h3>Errors</h3>", start)]


def test_a_short_soak_shows_its_values_without_charts_and_says_it_is_too_short_for_slopes(run: Path) -> None:
    html = _section(run)
    assert "too short to extrapolate per hour (50 s of probes; 5 minutes needed): 100.0 -&gt; 105.0 MB" in html
    latency = html[html.index("Latency drift:"):html.index("</p>", html.index("Latency drift:"))]
    assert "too short to extrapolate per hour (" in latency and "s of steady state; 5 minutes needed)" in latency
    assert "MB per hour" not in html and "rows per hour" not in html and "ms per hour" not in html
    assert "1 during the scenario" in html  # autovacuum runs
    assert "6 probes, one every 10 s (db/known_soak.jsonl)" in html
    # 50 s of probes: not drawn over time; the P95 windows are (the known run has 100 s of steady state)
    assert html.count("<svg") == 1 and "50 s of probes: charts over time are drawn from 60 s" in html


@pytest.fixture(scope="module")
def long_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("soak") / "long", probes=6, every_s=60.0)


def test_five_minutes_of_probes_show_their_known_slopes(long_run: Path) -> None:
    html = _section(long_run)
    assert html.count("<svg") == 2 and "charts over time are drawn from" not in html  # P95 windows and probes
    assert "+60.00 MB per hour (95 % interval +60.00 to +60.00; 100.0 -&gt; 105.0 MB over 6 probes)" in html
    assert "+120.00 MB per hour" in html  # table + index size
    assert "+6,000.00 rows per hour" in html  # dead tuples
    assert "6 probes, one every 60 s (db/known_soak.jsonl)" in html


def test_one_probe_leaves_the_section_out(tmp_path: Path) -> None:
    run = _run(tmp_path / "one", probes=1)
    assert 'id="soak-known"' not in (run / "report.html").read_text()


def _drifting(sc: ScenarioSummary) -> DriftFigures:
    """The drift figures of 20 minutes whose P95 rises from 20 ms by 20 ms per hour (100 % per hour), with the
    scenario's own resource trends."""
    series = [TimePoint(t=t, rps=10, errors=0, p50=10.0, p95=20.0 + 20.0 * t / 3600, p99=40.0, users=5)
              for t in range(1200)]
    measured = drift.measure(sc.model_copy(update={"timeseries": series, "warmup_s": 10.0}))
    return measured.model_copy(update={"trends": sc.drift.trends if sc.drift else []})


def _no_fit(*_: object) -> None:
    raise AssertionError("fitted again after the analysis stage")


def test_the_judge_names_a_drift_as_a_finding_or_a_verdict_when_a_threshold_is_set(
        run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sc = summary_file.read(run).scenarios["known"]
    # the stored figures of a long drifting series on the known run's own (short) timeseries: the judge reads them
    long = sc.model_copy(update={"drift": _drifting(sc)})
    monkeypatch.setattr(drift, "ols", _no_fit)
    verdicts, findings = limits.drift_verdicts("soak", long, Thresholds())
    assert verdicts == [] and len(findings) == 1 and "latency drift" in findings[0] and ": drift" in findings[0]
    verdicts, findings = limits.drift_verdicts("soak", long, Thresholds(p95_drift_per_hour=0.5))
    assert findings == [] and [v.status for v in verdicts] == ["fail"]
    assert judge.format_value(verdicts[0].metric, verdicts[0].value).endswith("%/h")
    verdicts, _ = limits.drift_verdicts("soak", long, Thresholds(p95_drift_per_hour=5.0))
    assert [v.status for v in verdicts] == ["pass"]
    assert verdicts[0].detail.endswith("within threshold (below the 500 %/h threshold)")
    # a short scenario's slope is shown on its page, never judged
    assert limits.drift_verdicts("known", sc, Thresholds(p95_drift_per_hour=0.5)) == ([], [])


def test_summary_json_holds_the_drift_figures_without_a_threshold(run: Path) -> None:
    stored = json.loads((run / "summary.json").read_text())["scenarios"]["known"]["drift"]
    latency = stored["latency"]
    assert stored["judged_from_s"] == drift.JUDGED_FROM_S
    assert latency["long_enough"] is False and latency["slope"] is None
    assert latency["why"].startswith("too short to extrapolate per hour (")
    assert latency["windows"] and set(latency["windows"][0]) == {"mid_s", "p95_ms", "requests"}
    assert [t["name"] for t in stored["trends"]] == list(drift.RESOURCES)
    rss = stored["trends"][0]
    assert (rss["first"], rss["last"], rss["slope"]) == (100.0, 105.0, None)
    assert "threshold" not in json.dumps(stored) and "verdict" not in json.dumps(stored)


def test_the_page_and_the_judge_use_the_stored_figures_without_fitting(
        run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    summary = summary_file.read(copy)
    summary.scenarios["known"].drift = _drifting(summary.scenarios["known"])
    summary_file.write(copy, summary)
    monkeypatch.setattr(drift, "ols", _no_fit)
    monkeypatch.setattr(drift, "measure", _no_fit)
    man, stored, j = analyse.judged(copy)
    assert any(f.startswith("known: latency drift, P95 +20.00 ms per hour") for f in j.findings), j.findings
    render.report_page(copy, man, stored, j, None)
    html = _section(copy)
    assert '<span class="fail">drift</span>' in html and "the P95 moves +20.00 ms per hour" in html


def test_an_old_summary_without_drift_figures_is_measured_again(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    data = json.loads((copy / "summary.json").read_text())
    for sc in data["scenarios"].values():
        del sc["drift"]
    (copy / "summary.json").write_text(json.dumps(data))
    assert summary_file.read(copy).scenarios["known"].drift is None  # still reads
    _, summary, _ = analyse.judged(copy)
    fresh = summary.scenarios["known"].drift
    assert fresh is not None and fresh.latency.why and fresh.latency.why.startswith("too short")
    analyse.analyse_and_render(copy, html=False)  # what `bookbench report` does: the file gets them
    assert "drift" in json.loads((copy / "summary.json").read_text())["scenarios"]["known"]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_the_section_reads_at_1280_px_in_a_real_browser(long_run: Path, tmp_path: Path) -> None:
    browser = Browser(tmp_path / "profile")
    try:
        page = _check_page(browser, "report", long_run / "report.html")
        charts = page.evaluate(_CHART_GEOMETRY)
        assert charts["narrow"] == [] and charts["overlaps"] == [], charts
        assert page.evaluate("document.querySelectorAll('#soak-known ~ .charts svg').length") >= 1
    finally:
        browser.close()
