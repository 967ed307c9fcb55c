"""Every page kind (report, review, compare, sweep, capacity) as a reader first sees it at 1280x900, in a real
headless Chromium: no console error, nothing wider than the screen, no failed item said twice in the first screen,
the decision and its reasons (or the headline) inside the first screen, legends clear of the plotting areas, charts
as wide as the page. The compare, sweep and capacity pages come from copies of the known run with latencies scaled
per index set, so the effects are known: seed 2x faster, recommended 20x faster; a real `compare --quick` folder is
checked the same way."""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from bookbench.analysis import judge
from bookbench.artifacts.samples import COLUMNS, read_rows
from bookbench.config.scenarios import SHIPPED_SCENARIOS
from bookbench.pipeline import analyse
from bookbench.pipeline import capacity as capacity_stage
from bookbench.pipeline import compare as compare_stage
from bookbench.pipeline import sweep as sweep_stage
from tests.budget import budget
from tests.report.browser import CHROMIUM, Browser, Page

KNOWN = Path(__file__).resolve().parents[1] / "data" / "known_run"
SPEED = {"none": 1.0, "seed": 0.5, "recommended": 0.05}
FEW_EVERY = 56  # keeps 17 of the known run's 1,000 requests after its warm-up (a comparison needs 20)


def _scaled_run(dest: Path, factor: float, every: int = 1) -> Path:
    """A copy of the known run with every latency multiplied by `factor`, keeping every `every`-th request."""
    shutil.copytree(KNOWN, dest)
    path = dest / "samples" / "known.csv.gz"
    rows = read_rows(path)[::every]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for r in rows:
        r["latency_ms"] = repr(float(r["latency_ms"]) * factor)
        writer.writerow([r.get(c, "") for c in COLUMNS])  # the known run is samples format 1: no `intended`
    path.write_bytes(gzip.compress(buf.getvalue().encode()))
    return dest


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("pages")
    run = _scaled_run(tmp / "run", 1.0)
    analyse.analyse_and_render(run)
    analyse.review_page(run)
    # three interleaved rounds per set, each round a little noisier than the last
    variants = {name: [_scaled_run(tmp / f"{name}-{i}", speed * (1 + 0.03 * ((i % 2) - 0.5))) for i in range(3)]
                for name, speed in SPEED.items()}
    # the compared runs' own report pages are not checked here: analysed without them (saves their charts' time)
    for d in (d for runs in variants.values() for d in runs):
        analyse.analyse_and_render(d, html=False)
    cmp_folder = tmp / "compare"
    cmp_folder.mkdir()
    compare_stage.finish(cmp_folder, variants, 0.05, False, None, Console(file=io.StringIO()))
    sizes = {1_000: 0.9, 100_000: 0.3, 1_000_000: 1.0}  # how much of the speed-up shows at each size
    sweep_folder = tmp / "sweep"
    points: dict[str, list[dict[str, object]]] = {n: [] for n in ("none", "recommended")}
    for size, share in sizes.items():
        for name in points:
            factor = 1.0 if name == "none" else (share if share < 1 else SPEED[name])
            d = _scaled_run(sweep_folder / "runs" / f"{name}-{size}", factor)
            analyse.analyse_and_render(d, html=False)
            points[name].append({"appointments": size, **sweep_stage._point(d, "known")})
    plan = sweep_stage.SweepPlan(sizes=list(sizes), sets=list(points), scenario="known", quick=False,
                                 duration_factor=1.0, scenario_file=SHIPPED_SCENARIOS, folder=sweep_folder,
                                 allow_remote=False, argv=[])
    sweep_stage.write(plan, points)
    # a baseline with too few requests to compare against a set with plenty, as `single` in `make demo`
    few = {"none": [_scaled_run(tmp / "few-none", 1.0, every=FEW_EVERY)],
           "recommended": [_scaled_run(tmp / "few-recommended", 0.05)]}
    (tmp / "few").mkdir()
    compare_stage.finish(tmp / "few", few, 0.05, False, None, Console(file=io.StringIO()))
    return {"report": run / "report.html", "review": run / "review.html", "compare": cmp_folder / "compare.html",
            "sweep": sweep_folder / "sweep.html", "capacity": _capacity_page(tmp / "capacity", sweep_folder / "runs"),
            "compare-few": tmp / "few" / "compare.html"}


def _capacity_page(folder: Path, runs: Path) -> Path:
    """capacity.html of a finished search whose steps are the sweep's runs (their figures, as a search records
    them): none holds at 10/s and breaks at 20/s, recommended holds at every rate tried."""
    def step(run: Path, rate: float, ok: bool) -> dict[str, object]:
        sc = json.loads((run / "summary.json").read_text())["scenarios"]["known"]
        p95 = sc["latency_ms"]["p95"]
        return {"rate": rate, "ok": ok, "why": "P95 and errors within the limits" if ok else "P95 above the limit",
                "requests": sc["requests"], "p95_ms": p95, "service_p95_ms": p95, "error_rate": sc["error_rate"],
                "dropped": 0, "throughput_rps": sc["throughput_rps"], "run": str(run),
                "outside_cores": None, "generator_saturated": False}

    sets = {"none": {"steps": [step(runs / "none-1000", 10, True), step(runs / "none-100000", 20, False)],
                     "max_rps": 10.0, "breaks_at": 20.0, "incomplete": False},
            "recommended": {"steps": [step(runs / "recommended-1000", 10, True),
                                      step(runs / "recommended-1000000", 20, True)],
                            "max_rps": 20.0, "breaks_at": None, "incomplete": False}}
    folder.mkdir()
    plan = capacity_stage.CapacityPlan(sets=list(sets), start_rps=10, max_rps=20, step_s=30, bisections=0,
                                       scenario_file=SHIPPED_SCENARIOS, dataset_overrides={}, folder=folder,
                                       allow_remote=False, argv=[])
    return capacity_stage.write(plan, {"limits": {"p95_ms": 90.0, "error_rate": 0.001}, "sets": sets, "stopped": None})


def test_compare_headline_says_ratios_in_words_against_every_candidate(pages: dict[str, Path]) -> None:
    result = json.loads((pages["compare"].parent / "compare.json").read_text())
    text = result["headline"]
    assert result["best"] == "recommended"
    # the one wording rule: verdict first, then estimate and interval in one notation (bookbench.analysis.wording)
    assert text.startswith("Against none, recommended on known over 3 round(s), n=3,000. Improved: P95 20x lower, "
                           "95 % CI from "), text
    assert "Against seed, improved: P95 10x lower, 95 % CI from " in text and "no change" not in text, text
    html = pages["compare"].read_text()
    assert "recommended <span class=\"muted\">against</span> seed" in html  # the candidates' own row
    for runs in result["runs"].values():
        for d in runs:
            assert f'href="../{Path(d).name}/report.html"' in html


def test_sweep_headline_comes_from_the_data(pages: dict[str, Path]) -> None:
    data = json.loads((pages["sweep"].parent / "sweep.json").read_text())
    text = data["headline"]
    # 0.9x at 1,000 is inside the default run-to-run prior; 3.3x and 20x are not
    assert text.startswith("known P95 with recommended against none is measurably lower from 100,000 appointments on")
    assert "at 1,000, no detectable change: P95 " in text, text
    assert "at 100,000, improved: P95 3.3x lower, 95 % CI from " in text
    assert "at 1,000,000, improved: P95 20x lower" in text
    html = pages["sweep"].read_text()
    assert html.count("run report</a>") == 6 and "cannot show" not in html


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_every_page_reads_at_a_glance_in_a_real_browser(pages: dict[str, Path], tmp_path: Path) -> None:
    browser = Browser(tmp_path / "profile")
    try:
        # the measures themselves: a legend matplotlib places inside the axes is an overlap; a table wider than the
        # screen, a failed item said twice and a line below the first screen are each reported
        control = tmp_path / "control.html"
        control.write_text(_CONTROL.format(chart=_legend_inside() + _text_outside(),
                                           wide="a figure that will not wrap " * 80))
        page = browser.load(control.as_uri())
        control_charts = page.evaluate(_CHART_GEOMETRY)
        assert control_charts["overlaps"], "the overlap measure is blind"
        assert control_charts["clipped"] == [[1, "outside the figure"]], "the clipping measure is blind"
        seen = page.evaluate(_LAYOUT)
        assert seen["scroll"] > seen["width"] and seen["tables"] == 1 and seen["wide"], "the width measure is blind"
        assert seen["repeated"] == ["x p95_ms = 678 ms"], "the repeated-failure measure is blind"
        assert "above the fold" in seen["screen"] and "below the fold" not in seen["screen"], seen["screen"]
        for kind, path in pages.items():
            page = _check_page(browser, kind, path)
            charts = page.evaluate(_CHART_GEOMETRY)
            if kind == "review":  # a form to sign: tables only
                assert charts["svgs"] == 0
                continue
            assert charts["svgs"] >= 1 and charts["legends"] >= 1, kind
            assert charts["narrow"] == [], f"{kind}: charts narrower than the page: {charts['narrow']}"
            assert charts["overlaps"] == [], f"{kind}: legend over a plotting area: {charts['overlaps']}"
            assert charts["clipped"] == [], f"{kind}: text cut off at a chart's edge: {charts['clipped']}"
    finally:
        browser.close()


def test_a_row_without_enough_samples_says_so_once(pages: dict[str, Path]) -> None:
    """The baseline with 17 requests: its row says why in one cell spanning the row; the candidate's row keeps
    its own figures and says once that it was not compared, not in every metric's cell."""
    html = pages["compare-few"].read_text()
    table = html[html.index('<table class="wrap metrics">'):]
    table = table[:table.index("</table>")]
    assert table.count("too few samples to compare (17 requests") == 1, table
    assert '<td colspan="5" class="l nodata">no figures: too few samples to compare (17 requests in ' in table
    assert table.count("not compared: none has no figures (its row says why)") == 1
    assert table.count("2.5 ms") == 1 and table.count("<td") == 2 + 6 + 1  # none: set, reason; recommended: 6, reason


@pytest.fixture(scope="module")
def quick_compare(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real `bookbench compare --quick` (5 s of burst per set, one round, no checks): its pages as a user gets
    them, with figures and wordings no synthetic run has."""
    tmp = tmp_path_factory.mktemp("quick")
    done = subprocess.run(
        [sys.executable, "-m", "bookbench", "compare", "--quick", "--sets", "none,recommended", "--rounds", "1",
         "--scenario-file", str(KNOWN.parent / "scenarios_compare_stop.yaml"), "--out", str(tmp / "out"),
         "--data-dir", str(tmp / "pg")], capture_output=True, text=True, timeout=budget(300))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_a_real_quick_compare_reads_at_a_glance(quick_compare: Path, tmp_path: Path) -> None:
    result = json.loads((quick_compare / "compare.json").read_text())
    pages = {"compare": quick_compare / "compare.html"}
    baseline = Path(result["runs"][result["baseline"]][0])
    for set_name, runs in result["runs"].items():
        pages[f"report {set_name}"] = Path(runs[0]) / "report.html"
        if (Path(runs[0]) / "review.html").exists():  # the best set's review, when a set is named best
            pages[f"review {set_name}"] = Path(runs[0]) / "review.html"
    browser = Browser(tmp_path / "profile")
    try:
        for kind, path in pages.items():
            _check_page(browser, kind, path, baseline if kind.startswith("review") else None)
    finally:
        browser.close()


def _first_screen_needs(kind: str, path: Path, baseline: Path | None = None) -> list[str]:
    """What the top 900 px must say: a run's decision and each item that failed (report, review), or the page's
    headline (compare, sweep, capacity). A review is judged against its baseline (the alert rules on throughput
    drop and latency rise need one), so its decision can differ from the run's own verdicts.json."""
    if kind.startswith(("report", "review")):
        if kind.startswith("review"):
            data = judge.to_file(analyse.judged(path.parent, baseline)[2]).model_dump()
        else:
            data = json.loads((path.parent / "verdicts.json").read_text())
        # a verdict's text is "<scenario> <metric> = <value> (<limit>, n=...)"; the item is the part before " ("
        failed = {v["text"].split(" (")[0] for v in data["verdicts"] if v["status"] == "fail"}
        return [data["decision"], *sorted(failed)]
    return [json.loads(path.with_suffix(".json").read_text())["headline"]]


def _check_page(browser: Browser, kind: str, path: Path, baseline: Path | None = None) -> Page:
    """At 1280x900: no console error, nothing wider than the screen (no sideways scroll, every table's right edge
    on screen), no failed item said twice in the first screen, and the first screen saying what it must."""
    page = browser.load(path.as_uri())
    assert page.problems() == [], kind
    seen = page.evaluate(_LAYOUT)
    assert seen["scroll"] <= seen["width"], f"{kind}: scrolls sideways ({seen['scroll']} px > {seen['width']} px)"
    assert seen["tables"] == 0 and seen["wide"] == [], f"{kind}: wider than the screen: {seen['wide']}"
    assert seen["repeated"] == [], f"{kind}: said twice in the first screen: {seen['repeated']}"
    screen = " ".join(seen["screen"].split())
    for text in _first_screen_needs(kind, path, baseline):
        assert " ".join(text.split()) in screen, f"{kind}: {text!r} is not in the first screen: {screen[:1500]}"
    return page


def _legend_inside() -> str:
    import matplotlib.pyplot as plt

    from bookbench.report.charts import _svg

    fig, ax = plt.subplots(figsize=(10.8, 2.6))
    ax.plot(range(10), range(10), label="a line with a long label")
    ax.legend(loc="upper left")
    return _svg(fig)


def _text_outside() -> str:
    """A chart saved at its fixed size with a label past its right edge: what the fixed margins must never do."""
    import io

    import matplotlib.pyplot as plt

    from bookbench.report.charts import WIDTH  # and its settings: text as SVG <text>, as the pages have it

    fig, ax = plt.subplots(figsize=(WIDTH, 2.6))
    ax.plot(range(10), range(10))
    fig.text(1.05, 0.5, "outside the figure")
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    plt.close(fig)
    return buf.getvalue()[buf.getvalue().index("<svg"):]


# Matplotlib's SVG: every axes is <g id="axes_N"> whose first <g id="patch_M"> is its plotting area; a legend is
# <g id="legend_N">. An overlap is a legend rectangle intersecting any plotting area by more than 2 px each way.
# A clipped text is one reaching more than 1 px past its chart's edge (the SVG's box): a label cut off.
_CHART_GEOMETRY = """(() => {
  const out = {svgs: 0, legends: 0, overlaps: [], narrow: [], clipped: []};
  const column = document.body.clientWidth - 48;
  document.querySelectorAll('.charts svg').forEach((svg, i) => {
    out.svgs += 1;
    const box = svg.getBoundingClientRect(), w = box.width;
    svg.querySelectorAll('text').forEach(t => {
      const r = t.getBoundingClientRect();
      if (r.width && (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 ||
                      r.bottom > box.bottom + 1)) out.clipped.push([i, t.textContent.trim()]);
    });
    if (w < 0.9 * column) out.narrow.push([i, Math.round(w), column]);
    const areas = [...svg.querySelectorAll('g[id^="axes_"]')].map(a => a.querySelector(':scope > g[id^="patch_"]'))
      .filter(p => p).map(p => p.getBoundingClientRect());
    svg.querySelectorAll('g[id^="legend_"]').forEach(legend => {
      out.legends += 1;
      const l = legend.getBoundingClientRect();
      areas.forEach(a => {
        const dx = Math.min(l.right, a.right) - Math.max(l.left, a.left);
        const dy = Math.min(l.bottom, a.bottom) - Math.max(l.top, a.top);
        if (dx > 2 && dy > 2) out.overlaps.push([i, legend.id, Math.round(dx), Math.round(dy)]);
      });
    });
  });
  return out;
})()"""


_CONTROL = """<style>.fail, .no-go {{ color: #c92a2a; }}</style><div class="banner">control</div>
<div class="charts">{chart}</div>
<div class="banner no-go">NO-GO: x p95_ms = 678 ms (threshold 500 ms); x p95_ms = 678 ms (review target 500 ms)</div>
<p>above the fold</p><table><tr><td style="white-space: nowrap">{wide}</td></tr></table>
<div style="height: 2000px"></div><p>below the fold</p>"""

# Layout at the loaded viewport. wide: elements reaching past the right edge (or left of the left one); tables: how
# many end past the right edge. repeated: failed items said twice in the first screen: the text of every element in
# the failing colour (the outermost one of a nest) that starts in the first screen, cut at line breaks, "; ", ": "
# and " — ", parentheses dropped ("x = 678 ms (threshold 500 ms)" and "x = 678 ms (review target 500 ms)" are one
# item), pieces under 12 characters ignored (FAIL in each failing row is a column, not a repetition). screen: the
# text of every text node wholly inside the first screen.
_LAYOUT = r"""(() => {
  const width = document.documentElement.clientWidth, height = innerHeight;
  const probe = document.createElement('span'); probe.className = 'fail'; document.body.appendChild(probe);
  const bad = getComputedStyle(probe).color; probe.remove();
  const out = {scroll: document.documentElement.scrollWidth, width, wide: [], tables: 0, repeated: [], screen: ''};
  const tables = [...document.querySelectorAll('table')];
  out.tables = tables.filter(t => t.getBoundingClientRect().right > width + 0.5).length;
  const counts = {};
  for (const el of document.body.querySelectorAll('*')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    if (r.right > width + 0.5 || r.left < -0.5)
      out.wide.push(`${el.tagName} ${el.getAttribute('class') || ''} ${Math.round(r.left)}-${Math.round(r.right)}: `
                    + (el.textContent || '').trim().slice(0, 60));
    const style = getComputedStyle(el);
    if (r.top >= height || style.color !== bad || getComputedStyle(el.parentElement).color === bad) continue;
    let text = el.innerText;
    while (/\([^()]*\)/.test(text)) text = text.replace(/\([^()]*\)/g, '');  // innermost first: "(3 item(s))"
    for (const part of text.split(/\n|; |: | — /)) {
      const item = part.replace(/\s+/g, ' ').trim();
      if (item.length >= 12) counts[item] = (counts[item] || 0) + 1;
    }
  }
  out.wide = out.wide.slice(0, 8);
  out.repeated = Object.keys(counts).filter(k => counts[k] > 1);
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const parts = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const range = document.createRange(); range.selectNodeContents(n);
    const r = range.getBoundingClientRect();
    if (r.height > 0 && r.top >= 0 && r.bottom <= height) parts.push(n.textContent);
  }
  out.screen = parts.join(' ');
  return out;
})()"""
