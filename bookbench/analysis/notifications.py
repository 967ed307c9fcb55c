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
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bookbench.artifacts.notifications import NotificationFacts
from bookbench.artifacts.summary import (
    Backlog,
    BookingInOutages,
    Breaker,
    CalendarChannel,
    Channel,
    Delays,
    Notifications,
)

CHANNELS = ("sms", "calendar")
# outbox kind -> (its channel, whether its delay runs from the booking's acknowledgement)
KINDS = {"confirm": ("sms", True), "insert": ("calendar", True),
         "cancel": ("sms", False), "delete": ("calendar", False)}


def _delays(values: list[float]) -> Delays:
    if not values:
        return Delays(n=0, p50=None, p95=None, p99=None, max=None)
    arr = np.asarray(values, dtype=float)
    p50, p95, p99 = (float(x) for x in np.percentile(arr, [50, 95, 99]))
    return Delays(n=int(arr.size), p50=p50, p95=p95, p99=p99, max=float(arr.max()))


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


def summarize(facts: NotificationFacts, received: list[dict[str, Any]],
              acknowledged: dict[int, float | None]) -> Notifications:
    deadline = facts.load_end + facts.drain_timeout_s
    rows = {row.dedup_key: row for row in facts.outbox}
    first_seen: dict[str, float] = {}
    copies: dict[str, int] = {}
    redelivered: dict[str, int] = {}
    refused_inserts = 0
    for r in received:
        key = str(r.get("key"))
        if key not in rows:
            continue  # another scenario's message
        if r.get("redelivery"):
            redelivered[key] = redelivered.get(key, 0) + 1
            continue
        if r.get("duplicate"):
            refused_inserts += 1
            continue
        copies[key] = copies.get(key, 0) + 1
        first_seen[key] = min(first_seen.get(key, r["t"]), r["t"])
    queued = {row.appointment_id for row in facts.outbox if row.kind in ("confirm", "insert")}
    per_channel: dict[str, Channel] = {}
    lost_total = 0
    for channel in CHANNELS:
        keys = [k for k, row in rows.items() if row.channel == channel]
        delays: list[float] = []
        cancel_delays: list[float] = []
        delivered = lost = duplicates = 0
        for key in keys:
            row = rows[key]
            seen = first_seen.get(key)
            if seen is None or seen > deadline:
                lost += 1
                continue
            delivered += 1
            duplicates += copies[key] - 1
            from_ack = KINDS[row.kind][1]
            ack = acknowledged.get(row.appointment_id) if from_ack else None
            if from_ack:
                delays.append(seen - (ack if ack is not None else row.created_at))
            else:
                cancel_delays.append(seen - row.created_at)
        lost_total += lost
        per_channel[channel] = Channel(
            expected=len(keys), delivered=delivered, lost=lost, duplicates=duplicates,
            dead=sum(1 for k in keys if rows[k].status == "dead"),
            retried=sum(1 for k in keys if rows[k].attempts > 1),
            redelivered=sum(redelivered.get(k, 0) for k in keys),
            delay_s=_delays(delays), cancel_delay_s=_delays(cancel_delays))
    calendar = CalendarChannel(**dict(per_channel["calendar"]), duplicate_inserts_refused=refused_inserts)
    peak = max((b for _, b in facts.backlog), default=0)
    end = facts.drained_at if facts.drained_at is not None else deadline
    breaker = {}
    for provider in CHANNELS:
        spans = _open_spans(facts, provider, end)
        breaker[provider] = Breaker(open_s=sum(b - a for a, b in spans), openings=len(spans),
                                    spans=[(a - facts.load_start, b - facts.load_start) for a, b in spans])
    return Notifications(
        acknowledged_bookings=len(acknowledged),
        # the outbox guarantee, checked: every acknowledged booking queued its SMS and its event
        bookings_without_outbox_rows=len(set(acknowledged) - queued),
        queued=len(facts.outbox), lost=lost_total,
        dead=sum(c.dead for c in per_channel.values()),
        redelivered=sum(c.redelivered for c in per_channel.values()),
        duplicates=sum(c.duplicates for c in per_channel.values()),
        conflicts_flagged=sum(1 for row in facts.outbox if row.conflict),
        sms=per_channel["sms"], calendar=calendar,
        backlog=Backlog(peak=peak, series=[(round(t - facts.load_start, 3), n) for t, n in facts.backlog]),
        drain_s=None if facts.drained_at is None else max(0.0, facts.drained_at - facts.load_end),
        drain_timeout_s=facts.drain_timeout_s, drain_stopped=facts.drain_stopped,
        exited=facts.exited, breaker=breaker, dispatchers=facts.dispatchers,
        faults=facts.faults, window_s=facts.load_end - facts.load_start,
        delivered_per_s=_rate(facts, first_seen))


def outage_windows(facts: NotificationFacts) -> list[tuple[float, float]]:
    """Absolute (start, end) of every injected outage, any provider (windows count from the load's start)."""
    out = []
    for provider in CHANNELS:
        for w in facts.faults.get(provider, {}).get("outages", []):
            start = facts.load_start + float(w["start_s"])
            out.append((start, start + float(w["length_s"])))
    return out


def booking_latency_in_outages(facts: NotificationFacts, starts: np.ndarray, latencies: np.ndarray
                               ) -> BookingInOutages | None:
    """Booking P95 during the provider outages against the rest of the steady load: the outbox must keep the
    booking path unaffected. None when no outage was injected."""
    windows = outage_windows(facts)
    if not windows or starts.size == 0:
        return None
    inside = np.zeros(starts.size, dtype=bool)
    for lo, hi in windows:
        inside |= (starts >= lo) & (starts < hi)

    def p95(values: np.ndarray) -> float | None:
        return float(np.percentile(values, 95)) if values.size else None

    return BookingInOutages(during_p95_ms=p95(latencies[inside]), during_n=int(inside.sum()),
                            outside_p95_ms=p95(latencies[~inside]), outside_n=int((~inside).sum()))


def _rate(facts: NotificationFacts, first_seen: dict[str, float]) -> float | None:
    """Deliveries per second from the first to the last receipt of this scenario's messages."""
    times = sorted(first_seen[row.dedup_key] for row in facts.outbox if row.dedup_key in first_seen)
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    return (len(times) - 1) / (times[-1] - times[0])
