"""Charts are drawn once at a fixed size (report/charts.py's margins); a legend or title longer than the figure makes
that chart fall back to the two-pass tight extent instead of being cut off. (The pages' charts are measured in a
real browser by tests/report/test_pages.py: no text past a chart's edge, no legend over a plotting area.)"""

from __future__ import annotations

import re

from bookbench.report import charts

FIXED_WIDTH = f"{charts.WIDTH * 72:g}pt"  # the SVG's width in points when saved at the figure's own size


def _width(svg: str) -> str:
    found = re.search(r'<svg[^>]* width="([^"]+)"', svg)
    assert found, svg[:300]
    return found.group(1)


def _cdf(n: int) -> list[list[float]]:
    return [[1.0 + i, i / n] for i in range(n + 1)]


def test_a_chart_is_saved_at_its_fixed_size() -> None:
    svg = charts.overlaid_cdfs({"none": _cdf(10), "recommended": _cdf(10)}, "steady: latency CDF",
                               {"none": 5.0, "recommended": 2.0})
    assert _width(svg) == FIXED_WIDTH


def test_a_legend_longer_than_the_chart_gets_the_tight_extent_instead_of_being_cut() -> None:
    # six sets with long names: one legend row of twelve entries, far wider than the plotting area
    names = [f"a-rather-long-index-set-name-{i}" for i in range(6)]
    svg = charts.overlaid_cdfs({n: _cdf(10) for n in names}, "steady: latency CDF", dict.fromkeys(names, 3.0))
    assert _width(svg) != FIXED_WIDTH
    assert float(_width(svg).removesuffix("pt")) > charts.WIDTH * 72  # widened to hold the legend


def test_a_title_longer_than_the_chart_gets_the_tight_extent() -> None:
    svg = charts.overlaid_cdfs({"none": _cdf(10)}, "steady: " + "a very long title " * 20, {"none": 5.0})
    assert float(_width(svg).removesuffix("pt")) > charts.WIDTH * 72
