"""The one judge: a table of cases, and every page and file that displays its decision agreeing with it."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from bookbench.analysis import judge, review
from bookbench.analysis import summarize as analysis
from bookbench.artifacts import verdicts
from bookbench.artifacts.manifest import Manifest, notifications_off
from bookbench.artifacts.summary import Summary

KNOWN = Path(__file__).resolve().parents[1] / "data" / "known_run"
SUITES = ("smoke", "uat", "stress", "preflight")


@pytest.fixture(scope="module")
def base_summary() -> Summary:
    return analysis.analyse_run(KNOWN)


def _manifest(**changes: Any) -> Manifest:
    m = json.loads((KNOWN / "manifest.json").read_text())
    # a passing fixture: loose limits, so that each case below changes one thing
    m["scenario_file"]["thresholds"] = {"global": {"p95_ms": 500, "error_rate": 0.05, "throughput_rps": 5},
                                        "per_scenario": {}}
    m["scenario_file"]["review_targets"] = {"p50_ms": 300, "p95_ms": 500, "p99_ms": 800, "error_rate": 0.05,
                                            "throughput_rps": 5, "availability": 0.9}
    m["scenario_file"]["alert_rules"] = {"p95_ms": 600, "error_rate": 0.05, "throughput_drop": 0.3}
    m.update(changes)
    return Manifest.model_validate(m)


def _checks(failing: str | None = None, suites: tuple[str, ...] = SUITES) -> list[dict[str, Any]]:
    return [{"suite": s, "name": f"{s} check", "passed": s != failing, "detail": "", "seconds": 0.1} for s in suites]


def test_a_full_passing_run_is_go(base_summary: Summary) -> None:
    j = judge.judge(_manifest(), base_summary, _checks())
    assert j.decision == "GO" and j.go and not j.caveats, [judge.describe(v) for v in j.failures]


def test_failed_preflight_is_no_go_on_every_page(base_summary: Summary, tmp_path: Path) -> None:
    manifest = _manifest()
    j = judge.judge(manifest, base_summary, _checks(failing="preflight"))
    assert j.decision == "NO-GO"
    assert [v.metric for v in j.failures] == ["preflight"]
    rv = review.build(manifest, base_summary, j)
    assert rv.decision == "NO-GO" and not rv.go
    assert next(g for g in rv.gates if g.label.startswith("Preflight")).status == "fail"
    assert "preflight" in rv.recommendation[0]
    verdicts.write(tmp_path, judge.to_file(j))
    data = json.loads((tmp_path / "verdicts.json").read_text())
    assert data["decision"] == "NO-GO" and data["go"] is False
    suite = ET.parse(tmp_path / "verdicts.junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("failures") == "1" and len(suite.findall(".//failure")) == 1


def test_throughput_exempt_scenarios_get_no_throughput_target(base_summary: Summary) -> None:
    manifest = _manifest()
    manifest.scenario_file.thresholds["per_scenario"] = {"known": {"throughput_rps": None}}
    manifest.scenario_file.review_targets["throughput_rps"] = 10_000  # would fail if it applied
    j = judge.judge(manifest, base_summary, _checks())
    target = next(v for v in j.verdicts if v.kind == "target" and v.metric == "throughput_rps")
    assert target.status == "exempt" and not target.failed
    assert not any(v.kind == "threshold" and v.metric == "throughput_rps" for v in j.verdicts)
    assert j.decision == "GO"
    rv = review.build(manifest, base_summary, j)
    row = next(r for r in rv.table if r.metric == "throughput_rps")
    assert row.cells[0].status == "exempt" and row.status == "exempt"


def test_skipped_checks_read_not_run_and_make_the_run_incomplete(base_summary: Summary) -> None:
    manifest = _manifest()
    j = judge.judge(manifest, base_summary, None)
    checks = [v for v in j.verdicts if v.kind == "check"]
    assert {v.status for v in checks} == {"not run"} and not j.failures
    assert j.decision == "INCOMPLETE" and any("checks not run" in c for c in j.caveats)
    rv = review.build(manifest, base_summary, j)
    assert {g.status for g in rv.gates if g.label.split()[0] in ("Smoke", "UAT", "Stress")} == {"not run"}
    assert "not met" not in rv.headline and "not complete" in rv.headline
    # preflight alone missing (a run without --dsn) is also incomplete, not a failure
    partial = judge.judge(manifest, base_summary, _checks(suites=("smoke", "uat", "stress")))
    assert partial.decision == "INCOMPLETE"


@pytest.mark.parametrize(("changes", "caveat"), [
    ({"quick": True, "duration_factor": 0.2}, "quick run (durations x0.2)"),
    ({"status": "interrupted", "reason": "interrupted by the user (Ctrl-C)"}, "run interrupted"),
])
def test_quick_and_interrupted_runs_are_incomplete(base_summary: Summary, changes: dict[str, Any],
                                                   caveat: str) -> None:
    j = judge.judge(_manifest(**changes), base_summary, _checks())
    assert j.decision == "INCOMPLETE" and any(c.startswith(caveat) for c in j.caveats)


def test_a_scenario_that_ran_without_samples_is_no_go_and_one_never_started_is_not_run(
        base_summary: Summary) -> None:
    empty = base_summary.model_copy(deep=True)
    empty.scenarios["known"] = analysis.analyse_scenario(analysis.load_samples(Path("/nonexistent")), 2, None)
    j = judge.judge(_manifest(), empty, _checks())
    assert j.decision == "NO-GO" and {v.status for v in j.failures} == {"no data"}
    manifest = _manifest()
    for key in ("started_at", "ended_at", "counts", "audit", "reconciliation"):
        setattr(manifest.scenarios["known"], key, None)
    j = judge.judge(manifest, empty, _checks())
    assert j.decision == "INCOMPLETE" and "scenario(s) not run: known" in j.caveats


def test_integrity_failures_and_missing_audit(base_summary: Summary) -> None:
    manifest = _manifest()
    recon = manifest.scenarios["known"].reconciliation
    assert recon is not None
    recon["lost"] = 2
    j = judge.judge(manifest, base_summary, _checks())
    assert j.decision == "NO-GO" and [v.metric for v in j.failures] == ["lost_bookings"]
    no_db = _manifest()
    no_db.scenarios["known"].audit = no_db.scenarios["known"].reconciliation = None
    j = judge.judge(no_db, base_summary, _checks())
    assert j.decision == "INCOMPLETE" and "double-booking audit not run (no --dsn)" in j.caveats


def test_skipped_integrity_steps_are_no_go_and_a_dead_worker_is_named(base_summary: Summary) -> None:
    skipped = _manifest()
    entry = skipped.scenarios["known"]
    entry.audit = entry.reconciliation = None
    entry.integrity_skipped = "skipped at the user's request (Ctrl-C pressed three times)"
    j = judge.judge(skipped, base_summary, _checks())
    assert j.decision == "NO-GO"
    assert [v.metric for v in j.failures] == ["double_bookings", "lost_bookings", "phantom_bookings"]
    assert all("Ctrl-C pressed three times" in v.detail for v in j.failures)
    worker = _manifest()
    entry = worker.scenarios["known"]
    assert entry.reconciliation is not None
    entry.reconciliation["phantom"] = 3
    entry.fault, entry.aborted = "load generator", "load generator fault: Locust worker 2 exited with code -9"
    j = judge.judge(worker, base_summary, _checks())
    phantom = next(v for v in j.failures if v.metric == "phantom_bookings")
    assert "Locust worker 2" in phantom.detail  # whose fault it is, not the service's


def test_headline_counts_match_the_listed_failures(base_summary: Summary) -> None:
    manifest = _manifest()
    manifest.scenario_file.thresholds["global"] = {"p95_ms": 1, "p50_ms": 1, "p99_ms": 1,
                                                         "error_rate": 0.0, "throughput_rps": 1e6}
    j = judge.judge(manifest, base_summary, _checks(failing="smoke"))
    headline = j.headline(1000, 1)
    items = j.failed_items()
    assert headline.startswith(f"{len(j.failures)} of {len(j.verdicts)} verdicts fail")
    assert f"and {len(items) - 3} more" in headline
    rv = review.build(manifest, base_summary, j)
    assert all(item in rv.recommendation[0] for item in items)  # every failed figure listed


def _with_throughput(summary: Summary, rps: float) -> Summary:
    """A baseline run that differs from `summary` only in its throughput."""
    base = summary.model_copy(deep=True)
    base.scenarios["known"].throughput_rps = rps
    return base


def test_throughput_drop_reads_as_a_drop_or_as_none(base_summary: Summary) -> None:
    tput = base_summary.scenarios["known"].throughput_rps
    rose = judge.judge(_manifest(), base_summary, _checks(), _with_throughput(base_summary, tput / 66))
    drop = next(v for v in rose.verdicts if v.metric == "throughput_drop")
    assert drop.value is not None and drop.status == "pass"
    assert judge.format_value("throughput_drop", drop.value) == (
        f"none (throughput {1 - drop.value:.2f}x the baseline)")
    fell = judge.judge(_manifest(), base_summary, _checks(), _with_throughput(base_summary, tput * 2))
    drop = next(v for v in fell.verdicts if v.metric == "throughput_drop")
    assert drop.status == "fail" and judge.format_value("throughput_drop", drop.value) == "50.0 %"


def test_no_index_fails_the_index_gate(base_summary: Summary) -> None:
    manifest = _manifest(index_set={"name": "none", "indexes": []})
    j = judge.judge(manifest, base_summary, _checks())
    assert j.decision == "NO-GO" and [v.metric for v in j.failures] == ["indexes_created"]


def test_a_shortened_run_is_a_caveat_whatever_shortened_it(base_summary: Summary) -> None:
    """compare's --duration-factor 0.15 is shorter than --quick's 0.2: incomplete too, and the advice names the
    factor, not an option that was not used."""
    manifest = _manifest(duration_factor=0.15)
    j = judge.judge(manifest, base_summary, _checks())
    assert j.decision == "INCOMPLETE" and j.caveats == ["shortened run (durations x0.15)"]


def test_a_killed_run_with_its_database_is_no_go_like_skipped_integrity(base_summary: Summary) -> None:
    """One rule for "integrity not checked": a run killed after it had its database never ran its audit."""
    m = json.loads((KNOWN / "manifest.json").read_text())
    for entry in m["scenarios"].values():
        entry["audit"] = entry["reconciliation"] = None
    killed = _manifest(status="killed", database_role="embedded", scenarios=m["scenarios"])
    j = judge.judge(killed, base_summary, _checks())
    assert j.decision == "NO-GO"
    assert {v.metric for v in j.failures} >= {"double_bookings", "lost_bookings", "phantom_bookings"}
    assert "killed before its audit" in judge.describe(j.failures[0]) or any(
        "killed before its audit" in v.detail for v in j.failures)


def test_gate_labels_count_the_checks_that_ran(base_summary: Summary) -> None:
    two = [*_checks(), {"suite": "smoke", "name": "another", "passed": False, "detail": "", "seconds": 0.1}]
    rows = judge.matrix(judge.judge(_manifest(), base_summary, two))
    assert rows[0].label == "Smoke tests (1/2)" and rows[2].label == "Stress test (1/1)"


def test_a_figure_breaking_several_rules_is_one_failed_item(base_summary: Summary) -> None:
    """The fixture's P95 (95 ms) over a threshold, a review target and an alert rule is one item naming the three
    limits, not three lines repeating the figure; a figure breaking one rule names that rule."""
    manifest = _manifest()
    manifest.scenario_file.thresholds["global"]["p95_ms"] = 90
    manifest.scenario_file.review_targets["p95_ms"] = 80
    manifest.scenario_file.alert_rules["p95_ms"] = 85
    manifest.scenario_file.review_targets["p99_ms"] = 98
    j = judge.judge(manifest, base_summary, _checks())
    assert len(j.failures) == 4
    assert j.failed_items() == ["known p95_ms = 95 ms (threshold 90 ms, review target 80 ms, alert rule 85 ms; "
                                "n=1,000)", "known p99_ms = 99 ms (review target 98 ms; n=1,000)"]
    assert j.headline(1000, 1, listed=0) == (
        f"4 of {len(j.verdicts)} verdicts fail (2 failed item(s)) over 1,000 requests")


def test_why_notifications_were_off_is_recorded_or_read_from_an_old_folder() -> None:
    """compare turns notifications off: the pages say so, not "a --target-url run, or notifications.enabled:
    false"; a run folder from before the record is read from its command line, round and target."""
    recorded = _manifest(notifications_off="not measured: `bookbench compare` turns notifications off (x)")
    assert judge.notifications_reason(recorded) == recorded.notifications_off
    old_compare = _manifest(command=["bookbench", "compare", "--quick"])
    assert "`bookbench compare` turns notifications off" in str(judge.notifications_reason(old_compare))
    in_rounds = _manifest(command=[], round=2, position=0)
    assert "its command turns notifications off" in str(judge.notifications_reason(in_rounds))
    target = _manifest(target={"url": "http://127.0.0.1:8000", "database": "embedded"})
    assert "a --target-url run" in str(judge.notifications_reason(target))
    assert judge.notifications_reason(_manifest(command=["bookbench", "run"])) is None  # on (or not said)
    assert notifications_off(False, ["bookbench", "run"], False, False) == (
        "not measured: notifications.enabled is false in the scenario file")
    assert notifications_off(False, ["bookbench", "run"], False, True) is None


def test_the_index_set_label_says_what_ran() -> None:
    applied = _manifest()
    assert judge.index_set_label(applied) == "recommended"
    found = _manifest(index_set={"name": "as-found", "applied": False,
                                 "indexes": [{"name": "i", "table": "t", "size_bytes": 1, "definition": "d"}]})
    assert judge.index_set_label(found) == "as found (1 performance index(es))"
    # a --target-url run without --dsn, even from a folder that wrote the file's default set as its name
    unread = _manifest(index_set={"name": "recommended"})
    assert judge.index_set_label(unread) == "as found, not recorded (no database access: --dsn)"
    gate = next(v for v in judge.judge(unread, analysis.analyse_run(KNOWN), _checks()).verdicts if v.kind == "gate")
    assert gate.status == "not run" and gate.detail == "indexes as found, not recorded (no database access: --dsn)"
