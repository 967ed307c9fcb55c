"""Path B figures from synthetic facts whose answers are known: delays, lost after the deadline, duplicates,
breaker spans; and the judge's Path B verdicts and deployment path."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from bookbench.analysis.judge import Judgement, Verdict, path_b
from bookbench.analysis.notifications import booking_latency_in_outages, summarize
from bookbench.artifacts.notifications import BreakerEvent, NotificationFacts, OutboxRow
from bookbench.artifacts.summary import CalendarChannel, Notifications, ScenarioSummary, Summary

T0 = 1_000_000.0


def _row(appt: int, channel: str, kind: str, key: str, created: float) -> OutboxRow:
    return OutboxRow(appointment_id=appt, channel=channel, kind=kind, dedup_key=key, created_at=created,
                     status="sent", attempts=1, sent_at=None, conflict=appt == 3, last_error=None)


def _facts(**over: Any) -> NotificationFacts:
    rows = [r for a in (1, 2, 3) for r in (_row(a, "sms", "confirm", f"sms-confirm-{a}", T0 + a),
                                           _row(a, "calendar", "insert", f"bb{a}", T0 + a))]
    base: dict[str, Any] = {
        "scenario": "s", "dispatchers": 1, "load_start": T0, "load_end": T0 + 10, "drain_timeout_s": 5,
        "drained_at": T0 + 12, "backlog": [(T0 + 1, 2), (T0 + 2, 6), (T0 + 12, 0)],
        "faults": {"sms": {"outages": [{"start_s": 2, "length_s": 3}]}, "calendar": {"outages": []}},
        "breaker": [BreakerEvent(t=T0 + 3, provider="sms", state="open"),
                    BreakerEvent(t=T0 + 5.5, provider="sms", state="closed")],
        "outbox": rows}
    return NotificationFacts(**{**base, **over})


def test_delays_lost_duplicates_and_breaker_spans() -> None:
    acked: dict[int, float | None] = {1: T0 + 1.1, 2: T0 + 2.1, 3: T0 + 3.1}
    received = [
        {"t": T0 + 2.1, "key": "sms-confirm-1"}, {"t": T0 + 2.6, "key": "sms-confirm-1"},  # a duplicate SMS
        {"t": T0 + 6.1, "key": "sms-confirm-2"},
        {"t": T0 + 16.0, "key": "sms-confirm-3"},  # after load end + drain timeout: lost
        {"t": T0 + 1.6, "key": "bb1"}, {"t": T0 + 2.6, "key": "bb2"}, {"t": T0 + 3.6, "key": "bb3"},
        {"t": T0 + 4.0, "key": "bb3", "duplicate": True},  # a retried insert refused by its id
        {"t": T0 + 1.0, "key": "sms-confirm-99"},  # another scenario's
    ]
    out = summarize(_facts(), received, acked)
    sms, cal = out.sms, out.calendar
    assert (sms.expected, sms.delivered, sms.lost, sms.duplicates) == (3, 2, 1, 1)
    assert sms.delay_s.n == 2 and sms.delay_s.p50 == pytest.approx(np.percentile([1.0, 4.0], 50))
    assert (cal.delivered, cal.lost, cal.duplicate_inserts_refused) == (3, 0, 1)
    assert cal.delay_s.p95 == pytest.approx(float(np.percentile([0.5, 0.5, 0.5], 95)))
    assert out.lost == 1 and out.conflicts_flagged == 2 and out.bookings_without_outbox_rows == 0
    breaker = out.breaker["sms"]
    assert breaker.open_s == pytest.approx(2.5) and breaker.openings == 1 and breaker.spans == [(3.0, 5.5)]
    assert out.backlog.peak == 6 and out.drain_s == pytest.approx(2.0)


def test_a_booking_without_outbox_rows_is_reported() -> None:
    acked: dict[int, float | None] = {1: T0, 2: T0, 3: T0, 4: T0}
    out = summarize(_facts(), [], acked)
    assert out.bookings_without_outbox_rows == 1


def test_booking_latency_split_by_the_outage_window() -> None:
    starts = np.array([T0 + 1, T0 + 2.5, T0 + 3, T0 + 6])
    lat = np.array([10.0, 200.0, 300.0, 20.0])
    split = booking_latency_in_outages(_facts(), starts, lat)
    assert split is not None and split.during_n == 2 and split.outside_n == 2
    assert split.during_p95_ms == pytest.approx(float(np.percentile([200.0, 300.0], 95)))


def _j(*verdicts: Verdict) -> Judgement:
    return Judgement(list(verdicts), "GO")


def test_path_b_needs_every_criterion_measured() -> None:
    booking = Verdict("threshold", "burst", "p95_ms", 40.0, 500.0, "pass", 100)
    sms = Verdict("notification", "burst", "sms_p95_s", 4.2, 30.0, "pass", 50)
    lost = Verdict("notification", "burst", "notifications_lost", 0.0, 0.0, "pass", 100)
    check = Verdict("notification", "checks", "notifications", 0, 0, "pass", 5, "5/5 passed")
    # path_b reads only the Path B figures: a summary built around them alone
    notes = Notifications.model_construct(calendar=CalendarChannel.model_construct(expected=10, delivered=10),
                                          conflicts_flagged=1)
    summary = Summary.model_construct(scenarios={"burst": ScenarioSummary.model_construct(notifications=notes)})
    path, text, rows = path_b(_j(booking, sms, lost, check), summary)
    assert path == "B" and "Path B" in text and all(r.status == "pass" for r in rows)
    not_measured = Verdict("notification", "checks", "notifications", None, 0, "not run", 0, "not run")
    path, text, _ = path_b(_j(booking, sms, lost, not_measured), summary)
    assert path == "A" and "End-to-end flow verified" in text
    slow = Verdict("threshold", "burst", "p95_ms", 900.0, 500.0, "fail", 100)
    assert path_b(_j(slow, sms, lost, check), summary)[0] == "none"
