"""Path B figures from synthetic facts whose answers are known: delays, lost after the deadline, duplicates,
breaker spans; and the judge's Path B verdicts and deployment path."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from bookbench.analysis import notifications
from bookbench.analysis.judge import Judgement, Verdict, path_b
from bookbench.analysis.sample_scan import Samples
from bookbench.artifacts import notifications as facts_file
from bookbench.artifacts.notifications import BreakerEvent, NotificationFacts, OutboxFile, OutboxRow
from bookbench.artifacts.summary import BookingInOutages, CalendarChannel, Notifications, ScenarioSummary, Summary
from bookbench.errors import ArtifactError

T0 = 1_000_000.0


def _row(appt: int, channel: str, kind: str, key: str, created: float) -> OutboxRow:
    return OutboxRow(appointment_id=appt, channel=channel, kind=kind, dedup_key=key, created_at=created,
                     status="sent", attempts=1, sent_at=None, conflict=appt == 3, last_error=None)


class Facts:
    """A scenario's facts as a test builds them: the JSON's fields and the outbox rows, written to files by
    write() in either format."""

    def __init__(self, fields: dict[str, Any], rows: list[OutboxRow]) -> None:
        self.fields, self.rows = fields, rows

    def header(self) -> NotificationFacts:
        return NotificationFacts(**self.fields, outbox=OutboxFile(file="s_outbox.parquet", rows=len(self.rows)))

    def write(self, folder: Path, version: int = 2) -> Path:
        path = folder / "s.json"
        if version == 1:  # the rows inside the JSON, as format 1 had them
            doc = {**self.header().model_dump(mode="json"), "format_version": 1,
                   "outbox": [r.model_dump(mode="json") for r in self.rows]}
            path.write_text(json.dumps(doc, indent=1))
            return path
        with facts_file.OutboxWriter(facts_file.outbox_file(path)) as writer:
            writer.write([r.model_dump() for r in self.rows])
        facts_file.write(path, self.header())
        return path


def _facts(**over: Any) -> Facts:
    rows = [r for a in (1, 2, 3) for r in (_row(a, "sms", "confirm", f"sms-confirm-{a}", T0 + a),
                                           _row(a, "calendar", "insert", f"bb{a}", T0 + a))]
    base: dict[str, Any] = {
        "scenario": "s", "dispatchers": 1, "load_start": T0, "load_end": T0 + 10, "drain_timeout_s": 5,
        "drained_at": T0 + 12, "backlog": [(T0 + 1, 2), (T0 + 2, 6), (T0 + 12, 0)],
        "faults": {"sms": {"outages": [{"start_s": 2, "length_s": 3}]}, "calendar": {"outages": []}},
        "breaker": [BreakerEvent(t=T0 + 3, provider="sms", state="open"),
                    BreakerEvent(t=T0 + 5.5, provider="sms", state="closed")]}
    fields = {**base, **over}
    return Facts(fields, fields.pop("outbox", rows))


def summarize(facts: Facts, received: list[dict[str, Any]], acked: dict[int, float | None], version: int = 2,
              cut: str = "") -> Notifications:
    """The analysis of the files these facts, records and acknowledgements make (`cut`: a line cut short at the
    end of the records, as a killed provider leaves it)."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        records = folder / "received_sms.jsonl"
        records.write_text("".join(json.dumps(r) + "\n" for r in received) + cut)
        acks = folder / "acked.txt"
        acks.write_text("".join(f"{i} {t}\n" if t is not None else f"{i}\n" for i, t in acked.items()))
        return notifications.summarize(facts.write(folder, version), [records, folder / "none.jsonl"], acks)


def booking_latency_in_outages(facts: Facts, starts: np.ndarray, lat: np.ndarray) -> BookingInOutages | None:
    return notifications.booking_latency_in_outages(facts.header(), pd.DataFrame({"ts": starts, "latency_ms": lat}))


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


def _busy() -> tuple[Facts, list[dict[str, Any]], dict[int, float | None]]:
    """300 bookings and 40 cancellations with random receipt times: some late, some redelivered, some sent twice,
    some acknowledged without a time, one row dead; records of another scenario's messages beside them."""
    rng = np.random.default_rng(7)
    rows, received, acked = [], [], {}
    for a in range(1, 301):
        created = T0 + a * 0.01
        acked[a] = None if a % 11 == 0 else created + float(rng.uniform(0, 0.01))
        for channel, kind, key in (("sms", "confirm", f"sms-confirm-{a}"), ("calendar", "insert", f"bb{a}")):
            rows.append(_row(a, channel, kind, key, created))
            seen = created + float(rng.lognormal(0, 1))
            if a % 37 == 0:
                seen += 100  # after the deadline: lost
            received.append({"t": seen, "key": key, "channel": channel})
            if a % 13 == 0:
                received.append({"t": seen + 1, "key": key, "redelivery": True})
            if a % 17 == 0:
                received.append({"t": seen + 2, "key": key} | ({"duplicate": True} if channel == "calendar" else {}))
    for a in range(1, 41):
        for channel, kind, key in (("sms", "cancel", f"sms-cancel-{a}"), ("calendar", "delete", f"bbx{a}")):
            rows.append(_row(a, channel, kind, key, T0 + 5 + a * 0.01))
            received.append({"t": T0 + 6 + float(rng.uniform(0, 2)), "key": key})
    rows[0] = rows[0].model_copy(update={"status": "dead", "attempts": 8})
    received.append({"t": T0 + 1, "key": "sms-confirm-99999"})  # another scenario's
    return _facts(outbox=rows, load_end=T0 + 20, drain_timeout_s=30), received, acked


def test_both_formats_give_the_same_summary_and_a_cut_record_is_skipped() -> None:
    facts, received, acked = _busy()
    two = summarize(facts, received, acked)
    assert summarize(facts, received, acked, version=1) == two
    assert summarize(facts, received, acked, cut='{"t": 1000004.5, "key": "sms-con') == two
    assert two.queued == 680 and two.sms.expected == 340 and two.calendar.lost == 8 and two.dead == 1


def test_delays_are_numpy_percentiles_to_the_last_bit() -> None:
    facts, received, acked = _busy()
    out = summarize(facts, received, acked)
    deadline = T0 + 50
    first: dict[str, float] = {}
    for r in received:
        if not r.get("redelivery") and not r.get("duplicate"):
            first[r["key"]] = min(first.get(r["key"], r["t"]), r["t"])
    sms = [first[row.dedup_key] - (acked[row.appointment_id] or row.created_at) for row in facts.rows
           if row.kind == "confirm" and first[row.dedup_key] <= deadline]
    cancels = [first[row.dedup_key] - row.created_at for row in facts.rows if row.kind == "delete"]
    p50, p95, p99 = np.percentile(sms, [50, 95, 99])
    assert (out.sms.delay_s.n, out.sms.delay_s.p50, out.sms.delay_s.p95, out.sms.delay_s.p99, out.sms.delay_s.max) \
        == (len(sms), p50, p95, p99, max(sms))
    assert out.calendar.cancel_delay_s.p95 == np.percentile(cancels, 95)
    assert out.sms.redelivered == 23 and out.calendar.duplicate_inserts_refused == 17
    assert out.sms.duplicates == 17 and out.calendar.duplicates == 0


@pytest.mark.parametrize(("line", "said"), [("12 soon", "acked.txt line 2: the time 'soon' is not a number"),
                                            ("9" * 30 + " 1.5", "acked.txt: an id beyond a 64-bit integer"),
                                            ("12 nan", "acked.txt: bookings 1-2: ts is nan: not a finite number")])
def test_a_bad_acknowledged_bookings_file_is_named(tmp_path: Path, line: str, said: str) -> None:
    (tmp_path / "acked.txt").write_text(f"1 {T0}\n{line}\n")
    with pytest.raises(ArtifactError) as err:
        notifications.summarize(_facts().write(tmp_path), [], tmp_path / "acked.txt")
    assert said in str(err.value)


def test_the_summary_splits_the_bookings_by_the_outages(tmp_path: Path) -> None:
    frame = pd.DataFrame({"ts": [T0 + 1, T0 + 2.5, T0 + 3, T0 + 6], "latency_ms": [10.0, 200.0, 300.0, 20.0],
                          "name": ["bookClinicAppointment"] * 3 + ["checkAvailability"]})
    with Samples.from_frame(frame) as sam:
        out = notifications.summarize(_facts().write(tmp_path), [], tmp_path / "none.txt", sam,
                                      "name = 'bookClinicAppointment'")
    assert out.booking_in_outages == BookingInOutages(during_p95_ms=float(np.percentile([200.0, 300.0], 95)),
                                                      during_n=2, outside_p95_ms=10.0, outside_n=1)
