"""Path B figures of one scenario, from its files: what the outbox queued, what the providers received and when.

* delay: provider receipt minus the booking's acknowledgement (for confirmations and calendar inserts), or minus
  the outbox row's commit (for cancellations, whose acknowledgement time is not recorded); exact percentiles;
* expected: one SMS and one calendar event per acknowledged booking, plus what cancellations queued;
* delivered: distinct messages received before the drain deadline (load end + drain timeout);
* lost: expected and not delivered by then; duplicates: the same message accepted as new more than once (SMS), or a
  second insert of an event refused by its client-chosen id (calendar: prevented, counted apart);
* redelivered: a message sent again after the provider had it (a dispatcher died before settling its row, or a
  timeout came after the provider acted), recognised by its idempotency key and answered as the first time: not a
  second delivery, counted apart;
* breaker: when and how long each provider's breaker stood open, from its transition log.

Memory grows with the groups (channels, kinds), not with the messages (issue 28): the outbox rows, the providers'
records and the acknowledged bookings are never held by Python. DuckDB joins them from the files into one row per
message (written to Parquet in the engine's spill folder), and every figure is a query of those rows; the delays'
percentiles are the samples' own (Samples.percentiles: an out-of-core sort, numpy's linear method to the last bit).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from bookbench.analysis.latency_sql import num
from bookbench.analysis.sample_scan import Samples, quoted, scanning
from bookbench.artifacts import json_rows
from bookbench.artifacts import notifications as facts_file
from bookbench.artifacts.notifications import NotificationFacts
from bookbench.artifacts.run_files import iter_acknowledged_times
from bookbench.artifacts.samples import COLUMNS
from bookbench.artifacts.summary import (
    Backlog,
    BookingInOutages,
    Breaker,
    CalendarChannel,
    Channel,
    Delays,
    Notifications,
)
from bookbench.errors import ArtifactError

if TYPE_CHECKING:  # a frame only from tests
    import pandas as pd

CHANNELS = ("sms", "calendar")
# a booking's own messages: their delay runs from its acknowledgement, and every acknowledged booking must have
# queued both (the others, a cancellation's, run from their row's commit)
BOOKING_KINDS = "('confirm', 'insert')"
ACK_BATCH = 100_000  # acknowledged bookings held by Python at once, on their way to the engine

# each record the providers kept of this scenario's messages (their files hold every scenario's: a key this outbox
# does not hold is another's). A line cut short by a killed provider reads as a row of NULLs (ignore_errors): it has
# no key and is left out, as json.loads left it out
RECEIVED = """
    SELECT key, t, coalesce(redelivery, false) AS redelivery, coalesce(duplicate, false) AS duplicate
    FROM read_json({files}, format = 'newline_delimited', ignore_errors = true,
                   columns = {{t: 'DOUBLE', key: 'VARCHAR', redelivery: 'BOOLEAN', duplicate: 'BOOLEAN'}})
    WHERE key IN (SELECT dedup_key FROM outbox)"""
NOTHING_RECEIVED = "SELECT NULL::VARCHAR AS key, NULL::DOUBLE AS t, false AS redelivery, false AS duplicate LIMIT 0"

# one row per outbox row: what the providers made of it and its delay. A redelivery (recognised by its key) is no
# second delivery and a refused calendar insert no second event: both are counted apart, before the copies
# accepted as new, whose first is the delivery (if it came by the deadline)
MESSAGES = """
    WITH received AS ({received}),
         seen AS (SELECT key, count(*) FILTER (WHERE redelivery) AS redelivered,
                         count(*) FILTER (WHERE NOT redelivery AND duplicate) AS refused,
                         count(*) FILTER (WHERE NOT redelivery AND NOT duplicate AND t IS NOT NULL) AS copies,
                         min(t) FILTER (WHERE NOT redelivery AND NOT duplicate) AS first_seen
                  FROM received GROUP BY key)
    SELECT o.channel, o.kind IN {booking} AS from_ack, o.status = 'dead' AS dead, o.attempts > 1 AS retried,
           o.conflict, coalesce(k.redelivered, 0) AS redelivered, coalesce(k.refused, 0) AS refused,
           coalesce(k.copies, 0) AS copies, k.first_seen,
           coalesce(k.first_seen <= {deadline}, false) AS delivered,
           -- from the acknowledgement where it was recorded, else from the row's commit
           k.first_seen - CASE WHEN o.kind IN {booking} THEN coalesce(a.ts, o.created_at) ELSE o.created_at END
               AS delay
    FROM outbox o LEFT JOIN seen k ON k.key = o.dedup_key
         LEFT JOIN acks a ON a.id = o.appointment_id AND o.kind IN {booking}"""

# per channel, what Channel counts (duplicates: the copies past the first of each delivered message)
PER_CHANNEL = """
    SELECT channel, count(*), count(*) FILTER (WHERE delivered), count(*) FILTER (WHERE NOT delivered),
           coalesce(sum(copies - 1) FILTER (WHERE delivered), 0), count(*) FILTER (WHERE dead),
           count(*) FILTER (WHERE retried), coalesce(sum(redelivered), 0)
    FROM s GROUP BY channel"""

# the scenario's totals: queued, conflicts, refused inserts, and the first receipts' span (the delivery rate)
TOTALS = """
    SELECT count(*), count(*) FILTER (WHERE conflict), coalesce(sum(refused), 0), count(first_seen),
           min(first_seen), max(first_seen)
    FROM s"""

# the outbox guarantee, checked: every acknowledged booking queued its SMS and its event
WITHOUT_ROWS = f"""
    SELECT count(*), count(*) FILTER (WHERE q.appointment_id IS NULL)
    FROM acks LEFT JOIN (SELECT DISTINCT appointment_id FROM outbox WHERE kind IN {BOOKING_KINDS}) q
         ON q.appointment_id = acks.id"""


def summarize(facts_path: Path, received: Sequence[Path], acknowledged: Path, bookings: Samples | None = None,
              booking_where: str = "TRUE") -> Notifications:
    """The figures of the facts at `facts_path` (either format), the providers' record files and the scenario's
    acknowledged bookings file; with `bookings` (the scenario's samples, `booking_where` naming its steady
    bookings), the booking P95 inside the injected outages against outside them."""
    with _engine() as eng:
        scratch = Path(eng.spill)
        facts = facts_file.read(facts_path, scratch)
        _load(eng, facts, facts_file.outbox_path(facts_path, facts), received, acknowledged, scratch)
        out = _figures(eng, facts)
    if bookings is not None:
        out.booking_in_outages = booking_latency_in_outages(facts, bookings, booking_where)
    return out


def _engine() -> Samples:
    """A DuckDB session as the samples get one (memory limit, a spill folder of its own removed on close, the
    exact percentiles), over no samples: its view `s` is then pointed at the scenario's messages."""
    return Samples("(SELECT " + ", ".join(f"NULL AS {c}" for c in COLUMNS) + " LIMIT 0)")


def _load(eng: Samples, facts: NotificationFacts, outbox: Path, received: Sequence[Path], acknowledged: Path,
          scratch: Path) -> None:
    """The views the queries read: `outbox`, `acks` (the last time written for each id, as a dict of the file's
    lines kept it) and `s`, the messages."""
    eng.con.execute(f"CREATE VIEW outbox AS SELECT * FROM read_parquet({quoted(str(outbox))})")
    raw = scratch / "acknowledged.parquet"
    _stream_acks(acknowledged, raw)
    eng.con.execute(f"CREATE VIEW acks AS SELECT id, arg_max_null(ts, seq) AS ts "
                    f"FROM read_parquet({quoted(str(raw))}) GROUP BY id")
    files = [str(p) for p in received if p.exists()]
    rec = RECEIVED.format(files="[" + ", ".join(map(quoted, files)) + "]") if files else NOTHING_RECEIVED
    messages = scratch / "messages.parquet"
    query = MESSAGES.format(received=rec, booking=BOOKING_KINDS, deadline=num(facts.load_end + facts.drain_timeout_s))
    eng.con.execute(f"COPY ({query}) TO {quoted(str(messages))} (FORMAT parquet)")
    eng.con.execute(f"CREATE OR REPLACE VIEW s AS SELECT * FROM read_parquet({quoted(str(messages))})")


_ACKS = pa.schema([("seq", pa.int64()), ("id", pa.int64()), ("ts", pa.float64())])
_ACKS_ROWS = json_rows.rows_of(_ACKS)


def _stream_acks(path: Path, out: Path) -> None:
    """The acknowledged bookings file's (id, time) pairs into Parquet, ACK_BATCH at a time, numbered in the file's
    order (an id written twice keeps its last time)."""
    with pq.ParquetWriter(out, _ACKS) as writer:
        batch: list[tuple[int, float | None]] = []
        seq = 0
        for pair in iter_acknowledged_times(path):
            batch.append(pair)
            if len(batch) == ACK_BATCH:
                writer.write_table(_ack_batch(batch, seq, path))
                seq, batch = seq + len(batch), []
        writer.write_table(_ack_batch(batch, seq, path))


def _ack_batch(pairs: list[tuple[int, float | None]], seq: int, path: Path) -> pa.Table:
    try:
        return json_rows.table([{"seq": seq + k, "id": i, "ts": t} for k, (i, t) in enumerate(pairs)], _ACKS_ROWS)
    except (TypeError, pa.ArrowInvalid):  # the outbox's ids are bigint: such an id is no booking of ours
        raise ArtifactError(f"{path}: an id beyond a 64-bit integer among its bookings {seq + 1}-"
                            f"{seq + len(pairs)}") from None
    except ValueError as exc:  # a time that is not a finite number
        raise ArtifactError(f"{path}: bookings {seq + 1}-{seq + len(pairs)}: {exc}") from None


def _figures(eng: Samples, facts: NotificationFacts) -> Notifications:
    found = {str(ch): rest for ch, *rest in eng.all(PER_CHANNEL)}
    queued, conflicts, refused, first_n, first_lo, first_hi = eng.one(TOTALS)
    acked, without_rows = eng.one(WITHOUT_ROWS)
    channels = {ch: _channel(eng, ch, found.get(ch, [0] * 7)) for ch in CHANNELS}
    calendar = CalendarChannel(**dict(channels["calendar"]), duplicate_inserts_refused=int(refused))
    peak = max((b for _, b in facts.backlog), default=0)
    deadline = facts.load_end + facts.drain_timeout_s
    end = facts.drained_at if facts.drained_at is not None else deadline
    breaker = {}
    for provider in CHANNELS:
        spans = _open_spans(facts, provider, end)
        breaker[provider] = Breaker(open_s=sum(b - a for a, b in spans), openings=len(spans),
                                    spans=[(a - facts.load_start, b - facts.load_start) for a, b in spans])
    return Notifications(
        acknowledged_bookings=int(acked), bookings_without_outbox_rows=int(without_rows),
        queued=int(queued), lost=sum(c.lost for c in channels.values()),
        dead=sum(c.dead for c in channels.values()),
        redelivered=sum(c.redelivered for c in channels.values()),
        duplicates=sum(c.duplicates for c in channels.values()),
        conflicts_flagged=int(conflicts), sms=channels["sms"], calendar=calendar,
        backlog=Backlog(peak=peak, series=[(round(t - facts.load_start, 3), n) for t, n in facts.backlog]),
        drain_s=None if facts.drained_at is None else max(0.0, facts.drained_at - facts.load_end),
        drain_timeout_s=facts.drain_timeout_s, drain_stopped=facts.drain_stopped,
        exited=facts.exited, breaker=breaker, dispatchers=facts.dispatchers,
        faults=facts.faults, window_s=facts.load_end - facts.load_start,
        # deliveries per second from the first to the last receipt of this scenario's messages
        delivered_per_s=(int(first_n) - 1) / (first_hi - first_lo) if first_n >= 2 and first_hi > first_lo
        else None)


def _channel(eng: Samples, channel: str, counts: Sequence[int]) -> Channel:
    expected, delivered, lost, duplicates, dead, retried, redelivered = (int(x) for x in counts)
    where = f"channel = {quoted(channel)} AND delivered"
    return Channel(expected=expected, delivered=delivered, lost=lost, duplicates=duplicates, dead=dead,
                   retried=retried, redelivered=redelivered, delay_s=_delays(eng, f"{where} AND from_ack"),
                   cancel_delay_s=_delays(eng, f"{where} AND NOT from_ack"))


def _delays(eng: Samples, where: str) -> Delays:
    n, top = eng.one(f"SELECT count(*), max(delay) FROM s WHERE {where}")
    if not n:
        return Delays(n=0, p50=None, p95=None, p99=None, max=None)
    qs = eng.percentiles("delay", where, [50, 95, 99])
    assert qs is not None  # rows were counted
    p50, p95, p99 = qs
    return Delays(n=int(n), p50=p50, p95=p95, p99=p99, max=float(top))


def _open_spans(facts: NotificationFacts, provider: str, until: float) -> list[tuple[float, float]]:
    """(opened, closed) of each time the provider's breaker stood open; one still open ends at `until`."""
    spans, opened_at = [], None
    for e in facts.breaker:
        if e.provider != provider:
            continue
        if e.state == "open" and opened_at is None:
            opened_at = e.t
        elif e.state == "closed" and opened_at is not None:
            spans.append((opened_at, e.t))
            opened_at = None
    if opened_at is not None:
        spans.append((opened_at, max(opened_at, until)))
    return spans


def outage_windows(facts: NotificationFacts) -> list[tuple[float, float]]:
    """Absolute (start, end) of every injected outage, any provider (windows count from the load's start)."""
    out = []
    for provider in CHANNELS:
        for w in facts.faults.get(provider, {}).get("outages", []):
            start = facts.load_start + float(w["start_s"])
            out.append((start, start + float(w["length_s"])))
    return out


def booking_latency_in_outages(facts: NotificationFacts, data: Samples | pd.DataFrame, where: str = "TRUE"
                               ) -> BookingInOutages | None:
    """Booking P95 during the provider outages against the rest of the steady load (the rows `where` holds): the
    outbox must keep the booking path unaffected. None when no outage was injected or nothing was booked."""
    windows = outage_windows(facts)
    if not windows:
        return None
    inside = " OR ".join(f"(ts >= {num(lo)} AND ts < {num(hi)})" for lo, hi in windows)
    with scanning(data) as sam:
        during_n, outside_n = (int(x) for x in sam.one(
            f"SELECT count(*) FILTER (WHERE {inside}), count(*) FILTER (WHERE NOT ({inside})) FROM s WHERE {where}"))
        if not during_n + outside_n:
            return None

        def p95(rows: int, cond: str) -> float | None:
            found = sam.percentiles("latency_ms", f"({where}) AND ({cond})", [95]) if rows else None
            return found[0] if found else None

        return BookingInOutages(during_p95_ms=p95(during_n, inside), during_n=during_n,
                                outside_p95_ms=p95(outside_n, f"NOT ({inside})"), outside_n=outside_n)
