"""compare.html's "Per statement" section, from copies of the known run carrying db/statements.json and db/waits.json
with known figures (tests/analysis/test_statements_compare.py): in a real headless Chromium at 1280 px it passes the
layout checks every page passes (tests/report/test_pages.py) and shows a row per statement and set with its figures,
the ratio, the plan links and the wait shares; a set whose runs lack the files is said not recorded."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from bookbench.pipeline import analyse
from bookbench.pipeline import compare as compare_stage
from tests.analysis.test_statements_compare import NOISE, statement_variants
from tests.report.browser import CHROMIUM, Browser
from tests.report.test_pages import _check_page


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("statements")
    out = {}
    for kind, rounds, without in (("three rounds", 3, ()), ("one not recorded", 3, (("recommended", 1),)),
                                  ("one round", 1, ())):
        folder = tmp / kind.replace(" ", "-")
        folder.mkdir()
        variants = statement_variants(folder, rounds, without)
        for run in (d for runs in variants.values() for d in runs):
            analyse.analyse_and_render(run, html=False)  # the runs' own report pages are not what this file checks
        compare_stage.finish(folder, variants, NOISE, False, None, Console(file=io.StringIO()))
        out[kind] = folder / "compare.html"
    return out


def _section(html: str) -> str:
    return html[html.index("<h2>Per statement</h2>"):html.index("<h2>Query plans per set</h2>")]


def _text(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_page_shows_each_statement_against_the_baseline(pages: dict[str, Path]) -> None:
    section = _section(pages["three rounds"].read_text())
    text = _text(section)
    for label in ("booking function", "conflict check", "availability", "SELECT pg_sleep($1)"):
        assert f"{label}" in text, label
    assert "SELECT $1 FROM pg_class" not in text  # an other statement too cheap to be among a run's costliest
    # an own statement under 1 % of the time in every set: named in one line, not given a block of rows
    assert "Also recorded, each under 1 % of the statements' execution time in every set (their figures are in " \
           "compare.json): notify." in text
    assert "SELECT notify($1)" not in text
    # the conflict check's rows: the baseline's figures, the candidate's with its ratio and interval
    check = text[text.index("conflict check"):text.index("availability")]
    assert "none (baseline) 900 calls 30.0/s 12.7 ms 1,430 (1,400 + 30) 30 conflict_check" in check, check
    assert "recommended 9,000 calls 300.0/s improved 10x higher" in check, check
    assert "0.10 ms improved 125x lower 95 % CI from " in check and "4.0 (4.0 + 0.0) improved 357x lower" in check
    assert "3 paired round(s), df 4" in check
    assert "0.0 0 shared blocks read per call, no ratio" in check and "recommended-0: 0" not in check
    # plan links relative to the compare folder, to the set's first run
    assert section.count('href="none-0/explain/conflict_check.json"') == 2  # the check and the booking function
    assert 'href="recommended-0/explain/insert.json"' in section
    # the wait shares side by side, the categories nobody spent time in left out
    waits = text[text.index("what the service's backends were doing"):]
    assert "Lock:advisory 60.0 % 2.0 %" in waits and "CPU 30.0 % 90.0 %" in waits, waits
    assert "Lock:other" not in waits and "pool wait per request 6.00 ms 6.00 ms" in waits
    result = json.loads((pages["three rounds"].parent / "compare.json").read_text())
    assert "Per statement, the conflict check changed most" in result["headline"]


def test_a_set_without_the_files_is_said_not_recorded(pages: dict[str, Path]) -> None:
    text = _text(_section(pages["one not recorded"].read_text()))
    assert ("not recorded for recommended: run 2 of 3 (recommended-1) has no db/statements.json: nothing is compared "
            "for it.") in text
    assert "recommended, wait shares: not recorded for recommended: run 2 of 3 (recommended-1) has no db/waits.json" \
        in text
    assert "recommended 9,000 calls" not in text and "125x" not in text
    result = json.loads((pages["one not recorded"].parent / "compare.json").read_text())
    assert "Per statement" not in result["headline"]


def test_one_round_shows_the_ratio_alone_and_says_so_once(pages: dict[str, Path]) -> None:
    text = _text(_section(pages["one round"].read_text()))
    assert text.count("One round per set: each ratio below is the ratio alone, without an interval") == 1
    check = text[text.index("conflict check"):text.index("availability")]
    # round 1 alone: 0.10 ms x 1.05 against 12.5 ms x 1.0 (CAND[0], BASE[0]): 0.105 ms, 119x lower
    assert "0.11 ms 119x lower ratio only" in check and "95 % CI" not in text, check
    result = json.loads((pages["one round"].parent / "compare.json").read_text())
    assert "the conflict check changed most: from 12.5 ms to 0.11 ms per call (119x lower; one round, no " \
           "interval)" in result["headline"], result["headline"]


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs it)")
def test_the_statement_section_reads_at_1280_px(pages: dict[str, Path], tmp_path: Path) -> None:
    browser = Browser(tmp_path / "profile")
    try:
        for kind, path in pages.items():
            page = _check_page(browser, "compare", path)
            rows = page.evaluate("[...document.querySelectorAll('table.statements tr')].length")
            # a heading row, then per statement its own row and one per set that recorded statements
            assert rows == 1 + 4 * (2 if kind == "one not recorded" else 3), (kind, rows)
    finally:
        browser.close()
