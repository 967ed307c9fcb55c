"""report.html's first screen (everything above the verdicts table): the decision, why (each failed figure once),
the verdicts a run chose not to measure folded into one line with the real reason, then the scenarios; and the
review of a --target-url run without --dsn. HTML/text level (the browser checks live in test_pages.py)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bookbench.artifacts.manifest import notifications_off
from bookbench.pipeline import analyse

KNOWN = Path(__file__).resolve().parents[1] / "data" / "known_run"
SUITES = ("smoke", "uat", "stress", "preflight")
FOLDED = re.compile(r'<details class="not-measured"[^>]*>.*?</details>', re.S)


def _run(tmp_path: Path, checks: tuple[str, ...] = ("smoke", "uat", "stress"), **changes: Any) -> Path:
    """The known run (1,000 requests, P95 95 ms, 2 % errors) with its manifest changed; judged and rendered."""
    run = tmp_path / "run"
    shutil.copytree(KNOWN, run)
    manifest = json.loads((run / "manifest.json").read_text())
    for key, value in changes.items():
        manifest[key] = value
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / "checks.json").write_text(json.dumps({"format_version": 1, "results": [
        {"suite": s, "name": f"{s} check", "passed": True, "detail": "ok", "seconds": 0.1} for s in checks]}))
    analyse.analyse_and_render(run)
    return run


def _first_screen(html: str) -> str:
    return html[html.index("<h1>"):html.index("<h2>Verdicts</h2>")]


def test_no_go_lists_each_failed_figure_once_then_the_scenarios(tmp_path: Path) -> None:
    html = (_run(tmp_path) / "report.html").read_text()
    first = _first_screen(html)
    verdicts = json.loads((tmp_path / "run" / "verdicts.json").read_text())
    failed = [v for v in verdicts["verdicts"] if v["status"] == "fail"]
    assert verdicts["decision"] == "NO-GO" and len(failed) == 5
    # five failed verdicts on three figures: the error rate breaks its threshold, review target and alert rule
    assert f"NO-GO — 5 of {len(verdicts['verdicts'])} verdicts fail (3 failed item(s)) over 1,000 requests" in first
    items = re.findall(r'<li class="fail">(.*?)</li>', first)
    assert items == ["known p95_ms = 95 ms (threshold 90 ms; n=1,000)",
                     "known error_rate = 2 % (threshold 0.1 %, review target 0.1 %, alert rule 1 %; n=1,000)",
                     "known availability = 98 % (review target 99.9 %; n=1,000)"]
    for item in items:
        assert html.count(item) == 1, item  # once on the whole page, not once per rule
    # decision, then why, then the scenarios
    assert first.index('class="banner no-go"') < first.index("Why:") < first.index('class="card') \
        < first.index("<h2>Scenarios</h2>")


def _folded(html: str) -> str:
    found = FOLDED.findall(html)
    assert len(found) == 1, "one folded line of verdicts not measured by design"
    return str(found[0])


def test_a_go_run_with_notifications_off_folds_them_into_one_line_with_the_real_reason(tmp_path: Path) -> None:
    """A compare run (notifications off) that passes: the first screen has no warning or failing colour, and the
    notification verdicts not measured are one folded line saying compare turned them off, with no row of their
    own in the verdicts table. A run folder from before the manifest recorded it reads the same from its command
    line."""
    loose = {"thresholds": {"global": {"p95_ms": 500, "error_rate": 0.05, "throughput_rps": 5, "sms_p95_s": 30,
                                       "notifications_lost": 0}, "per_scenario": {}},
             "review_targets": {"p95_ms": 500, "error_rate": 0.05, "availability": 0.9},
             "alert_rules": {"p95_ms": 600, "error_rate": 0.05, "throughput_drop": 0.3}}
    scenario_file = {**json.loads((KNOWN / "manifest.json").read_text())["scenario_file"], **loose}
    command = ["bookbench", "compare", "--sets", "none,recommended"]
    recorded = notifications_off(False, command, True, True)
    assert recorded is not None
    for i, off in enumerate((recorded, None)):  # a new run folder, then one from before the field
        changes: dict[str, Any] = {"command": command, "round": 1, "position": 0, "scenario_file": scenario_file}
        if off:
            changes["notifications_off"] = off
        html = (_run(tmp_path / str(i), checks=SUITES, **changes) / "report.html").read_text()
        first = _first_screen(html)
        assert 'class="banner go"' in first and "GO — every verdict holds over 1,000 requests" in first
        folded = _folded(first)
        assert "3 verdicts not measured by design: `bookbench compare` turns notifications off (it" in folded
        assert "known: sms_p95_s, known: notifications_lost, checks: notifications" in folded
        assert not re.search(r'class="[^"]*\b(warn|fail|no-go)\b', first)  # nothing in the failing colours
        assert "NOT RUN" not in first and "a --target-url run, or notifications.enabled: false" not in html
        rest = FOLDED.sub("", html)
        assert ">sms_p95_s<" not in rest and ">notifications_lost<" not in rest  # no row of their own


def test_a_target_run_without_dsn_reviews_and_says_what_ran(tmp_path: Path) -> None:
    """`bookbench review` of a --target-url run without --dsn renders (it stopped with exit 3 on the missing
    PostgreSQL version), saying what was not measured; the header names the indexes as found and not recorded,
    even for a folder that wrote the file's default set as its name."""
    scenarios = json.loads((KNOWN / "manifest.json").read_text())["scenarios"]
    for entry in scenarios.values():
        entry["audit"] = entry["reconciliation"] = None
    run = _run(tmp_path, target={"url": "http://127.0.0.1:8000", "database": "embedded", "workers": 0},
               postgres=None, index_set={"name": "recommended"}, scenarios=scenarios)
    done = subprocess.run([sys.executable, "-m", "bookbench", "review", str(run)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr  # NO-GO on the known run's figures, not a crash (3)
    assert "Traceback" not in done.stdout + done.stderr
    review = (run / "review.html").read_text()
    assert "database not read (no --dsn: no audit, reconciliation or index evidence)" in review
    label = "index set <b>as found, not recorded (no database access: --dsn)</b>"
    report = (run / "report.html").read_text()
    for page in (report, review):
        assert label in page and "index set <b>recommended</b>" not in page
        folded = _folded(page)
        assert "no database access during the run (--dsn) (3)" in folded  # the audit and reconciliation
        assert "indexes as found, not recorded (no database access: --dsn) (1)" in folded  # the index gate
        assert "a --target-url run" in folded  # the notifications check
    assert "Not recorded: the run had no database access (--dsn)" in report
