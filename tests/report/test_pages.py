"""Every page kind (report, review, compare, sweep) as a reader first sees it, in a real headless Chromium: no
console error, the headline inside the first screen, legends clear of the plotting areas, charts as wide as the
page. The compare and sweep pages come from copies of the known run with latencies scaled per index set, so the
effects are known: seed 2x faster, recommended 20x faster."""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from bookbench.artifacts.samples import COLUMNS, read_rows
from bookbench.pipeline import analyse
from bookbench.pipeline import compare as compare_stage
from bookbench.pipeline import sweep as sweep_stage
from bookbench.spec.scenarios import SHIPPED_SCENARIOS
from tests.report.browser import CHROMIUM, Browser

KNOWN = Path(__file__).resolve().parents[1] / "data" / "known_run"
SPEED = {"none": 1.0, "seed": 0.5, "recommended": 0.05}


def _scaled_run(dest: Path, factor: float) -> Path:
    """A copy of the known run with every latency multiplied by `factor`."""
    shutil.copytree(KNOWN, dest)
    path = dest / "samples" / "known.csv.gz"
    rows = read_rows(path)
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
    analyse.report(run)
    analyse.review_page(run)
    # three interleaved rounds per set, each round a little noisier than the last
    variants = {name: [_scaled_run(tmp / f"{name}-{i}", speed * (1 + 0.03 * ((i % 2) - 0.5))) for i in range(3)]
                for name, speed in SPEED.items()}
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
            analyse.report(d)
            points[name].append({"appointments": size, **sweep_stage._point(d, "known")})
    plan = sweep_stage.SweepPlan(sizes=list(sizes), sets=list(points), scenario="known", quick=False,
                                 duration_factor=1.0, scenario_file=SHIPPED_SCENARIOS, folder=sweep_folder,
                                 allow_remote=False, argv=[])
    sweep_stage.write(plan, points)
    return {"report": run / "report.html", "review": run / "review.html", "compare": cmp_folder / "compare.html",
            "sweep": sweep_folder / "sweep.html"}


def test_compare_headline_says_ratios_in_words_against_every_candidate(pages: dict[str, Path]) -> None:
    result = json.loads((pages["compare"].parent / "compare.json").read_text())
    text = result["headline"]
    assert result["best"] == "recommended"
    assert text.startswith("Against none, recommended has known P95 20x lower (95 % CI ")
    assert "Against seed: P95 10x lower" in text
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
    assert "1,000: 10 % lower" in text and "100,000: 3.3x lower" in text and "1,000,000: 20x lower" in text
    html = pages["sweep"].read_text()
    assert html.count("run report</a>") == 6 and "cannot show" not in html


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_every_page_reads_at_a_glance_in_a_real_browser(pages: dict[str, Path], tmp_path: Path) -> None:
    browser = Browser(tmp_path / "profile")
    try:
        # the measure itself: a legend matplotlib places inside the axes must be reported as an overlap
        control = tmp_path / "control.html"
        control.write_text(f'<div class="banner">control</div><div class="charts">{_legend_inside()}</div>')
        assert browser.load(control.as_uri()).evaluate(_CHART_GEOMETRY)["overlaps"], "the overlap measure is blind"
        for kind, path in pages.items():
            page = browser.load(path.as_uri())
            assert page.problems() == [], kind
            banner = page.evaluate("""(() => { const b = document.querySelector('.banner');
                const r = b.getBoundingClientRect();
                return {bottom: r.bottom, text: b.innerText, height: innerHeight}; })()""")
            assert banner["bottom"] <= banner["height"], f"{kind}: the headline is below the first screen"
            assert len(banner["text"]) > 30, kind
            charts = page.evaluate(_CHART_GEOMETRY)
            if kind == "review":  # a form to sign: tables only
                assert charts["svgs"] == 0
                continue
            assert charts["svgs"] >= 1 and charts["legends"] >= 1, kind
            assert charts["narrow"] == [], f"{kind}: charts narrower than the page: {charts['narrow']}"
            assert charts["overlaps"] == [], f"{kind}: legend over a plotting area: {charts['overlaps']}"
    finally:
        browser.close()


def _legend_inside() -> str:
    import matplotlib.pyplot as plt

    from bookbench.report.charts import _svg

    fig, ax = plt.subplots(figsize=(10.8, 2.6))
    ax.plot(range(10), range(10), label="a line with a long label")
    ax.legend(loc="upper left")
    return _svg(fig)


# Matplotlib's SVG: every axes is <g id="axes_N"> whose first <g id="patch_M"> is its plotting area; a legend is
# <g id="legend_N">. An overlap is a legend rectangle intersecting any plotting area by more than 2 px each way.
_CHART_GEOMETRY = """(() => {
  const out = {svgs: 0, legends: 0, overlaps: [], narrow: []};
  const column = document.body.clientWidth - 48;
  document.querySelectorAll('.charts svg').forEach((svg, i) => {
    out.svgs += 1;
    const w = svg.getBoundingClientRect().width;
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
