"""The four operations of a voice-agent call, shared by the REST and the Vapi routes."""

from __future__ import annotations

import datetime as dt

import asyncpg

from target_service import queries
from target_service.models import (
    SLOT_MINUTES,
    Appointment,
    Availability,
    Booked,
    BookingRequest,
    Cancelled,
    Slot,
    Upcoming,
    bookable_until,
)

DAY_START_HOUR = 9
DAY_END_HOUR = 17


class Refusal(Exception):
    """A normal negative answer (not found, conflict, invalid): mapped to 404 / 409 / 422 or a tool result."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.message = message


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(DAY_START_HOUR), tzinfo=dt.UTC)
    return start, start.replace(hour=DAY_END_HOUR)


async def availability(conn: asyncpg.Connection, org_id: int, provider_id: int, day: dt.date) -> Availability:
    opens, closes = _day_bounds(day)
    rows = await conn.fetch(queries.AVAILABILITY, org_id, provider_id, opens, closes)
    if not rows:
        raise Refusal(404, "provider_not_found", f"provider {provider_id} not found")
    busy = [
        (r["scheduled_at"], r["scheduled_at"] + dt.timedelta(minutes=r["duration_minutes"]))
        for r in rows
        if r["scheduled_at"] is not None
    ]
    now = dt.datetime.now(dt.UTC)
    latest = bookable_until(now)  # the last bookable day ends at this time of day
    free = []
    slot = opens
    step = dt.timedelta(minutes=SLOT_MINUTES)
    while slot + step <= closes:
        end = slot + step
        if now < slot <= latest and not any(b_start < end and b_end > slot for b_start, b_end in busy):
            free.append(Slot(start=slot, end=end))
        slot = end
    return Availability(provider_id=provider_id, date=day, free_slots=free)


async def upcoming(conn: asyncpg.Connection, org_id: int, contact_id: int) -> Upcoming:
    row = await conn.fetchrow(queries.UPCOMING, org_id, contact_id)
    if row is None:
        raise Refusal(404, "contact_not_found", f"contact {contact_id} not found")
    appt = None
    if row["id"] is not None:
        appt = Appointment(id=row["id"], provider_id=row["provider_id"], scheduled_at=row["scheduled_at"],
                           duration_minutes=row["duration_minutes"])
    return Upcoming(contact_id=contact_id, appointment=appt)


_BOOK_REFUSALS: dict[str, tuple[int, str]] = {
    "slot_taken": (409, "that time overlaps an existing appointment of this provider"),
    "contact_not_found": (404, "contact not found"),
    "provider_not_found": (404, "provider not found"),
    "invalid": (422, "start must be in the future and duration 5-240 minutes"),
}


async def book(conn: asyncpg.Connection, org_id: int, req: BookingRequest) -> Booked:
    row = await conn.fetchrow(queries.BOOK, org_id, req.contact_id, req.provider_id, req.start,
                              req.duration_minutes)
    assert row is not None  # the function always returns exactly one row
    if row["status"] == "booked":
        return Booked(appointment_id=row["appointment_id"])
    status_code, message = _BOOK_REFUSALS[row["status"]]
    raise Refusal(status_code, row["status"], message)


async def cancel(conn: asyncpg.Connection, org_id: int, appointment_id: int) -> Cancelled:
    cancelled = await conn.fetchval(queries.CANCEL, org_id, appointment_id)
    if cancelled is not None:
        return Cancelled(appointment_id=appointment_id)
    current = await conn.fetchval(queries.APPOINTMENT_STATUS, org_id, appointment_id)
    if current is None:
        raise Refusal(404, "appointment_not_found", f"appointment {appointment_id} not found")
    raise Refusal(409, "not_cancellable", f"appointment {appointment_id} is {current}, not booked")
