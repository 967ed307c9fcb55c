"""Request and response bodies; validation here is what turns bad input into a 422 naming the field."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

MAX_ID = 2**63 - 1
# Bookings further out than this are almost certainly a typo (year 2062 instead of 2026).
MAX_BOOKING_HORIZON = dt.timedelta(days=730)

# strict: a JSON number, never true (which lax mode reads as 1) nor "1"
DbId = Annotated[int, Field(gt=0, le=MAX_ID, strict=True)]
SLOT_MINUTES = 30


def _aware_utc(value: dt.datetime) -> dt.datetime:
    # A voice agent often sends local-looking ISO strings; a naive time is taken as UTC rather than refused.
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value


def _iso_text(parsed: type, pattern: str, message: str) -> BeforeValidator:
    """Accept only text matching `pattern` (or a value already of type `parsed`): pydantic's lax mode would read 0
    or a unix time as a date, and 2026-01-01 as a midnight start."""
    form = re.compile(pattern)

    def check(value: object) -> object:
        if isinstance(value, parsed):
            return value
        if not isinstance(value, str) or not form.fullmatch(value):
            raise ValueError(message)
        return value

    return BeforeValidator(check)


def bookable_until(now: dt.datetime) -> dt.datetime:
    """The latest start a booking made at `now` accepts; availability lists nothing later, so that every slot it
    offers can be booked."""
    return now + MAX_BOOKING_HORIZON


def _bookable(value: dt.datetime) -> dt.datetime:
    now = dt.datetime.now(dt.UTC)
    try:
        # in UTC first: comparing 0001-01-01T00:00+01:00 with now would overflow (OverflowError is not a
        # ValueError, so pydantic would let it escape as a 500)
        value = value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("is outside the representable date range") from None
    if value <= now:
        raise ValueError("must be in the future")
    if value > bookable_until(now):
        raise ValueError(f"must be within {MAX_BOOKING_HORIZON.days} days from now")
    if value.minute % SLOT_MINUTES or value.second or value.microsecond:
        raise ValueError(f"must start on the {SLOT_MINUTES}-minute grid in UTC (:00 or :30)")
    return value


_FRACTION = re.compile(r"\d{2}:\d{2}:\d{2}[.,](\d+)")


def _no_finer_than_microseconds(value: object) -> object:
    """pydantic reads 10:00:00.000000001 as 10:00:00 (it drops digits past the sixth): refused instead, since a
    booking must not be made at a time other than the one asked for."""
    if isinstance(value, str) and (m := _FRACTION.search(value)) and m.group(1)[6:].strip("0"):
        raise ValueError("has a fraction of a second finer than microseconds; a start is on the "
                         f"{SLOT_MINUTES}-minute grid, e.g. 2030-01-01T10:30:00Z")
    return value


BookableTime = Annotated[dt.datetime,
                         _iso_text(dt.datetime, r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}.*", "must be a date and time as "
                                   "YYYY-MM-DDTHH:MM[:SS][+HH:MM]"),
                         BeforeValidator(_no_finer_than_microseconds),
                         AfterValidator(_aware_utc), AfterValidator(_bookable)]

# How far back an availability question makes sense (a calendar view of last year); beyond it, a typo.
MAX_LOOKBACK = dt.timedelta(days=366)
def _plausible_day(value: dt.date) -> dt.date:
    today = dt.datetime.now(dt.UTC).date()
    if not today - MAX_LOOKBACK <= value <= today + MAX_BOOKING_HORIZON:
        raise ValueError(f"must be within {MAX_LOOKBACK.days} days before and {MAX_BOOKING_HORIZON.days} days "
                         "after today")
    return value


CalendarDate = Annotated[dt.date, _iso_text(dt.date, r"\d{4}-\d{2}-\d{2}", "must be a date as YYYY-MM-DD"),
                         AfterValidator(_plausible_day)]


class BookingRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    contact_id: DbId = Field(alias="contactId")
    provider_id: DbId = Field(alias="providerId")
    start: BookableTime
    duration_minutes: int = Field(default=30, ge=5, le=240, strict=True, alias="durationMinutes")


class AvailabilityQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    provider_id: DbId = Field(alias="providerId")
    date: CalendarDate


class ContactRef(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    contact_id: DbId = Field(alias="contactId")


class AppointmentRef(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    appointment_id: DbId = Field(alias="appointmentId")


class Slot(BaseModel):
    start: dt.datetime
    end: dt.datetime


class Availability(BaseModel):
    provider_id: int
    date: dt.date
    free_slots: list[Slot]


class Appointment(BaseModel):
    id: int
    provider_id: int
    scheduled_at: dt.datetime
    duration_minutes: int


class Upcoming(BaseModel):
    contact_id: int
    appointment: Appointment | None


class Booked(BaseModel):
    status: Literal["booked"] = "booked"
    appointment_id: int


class Cancelled(BaseModel):
    status: Literal["cancelled"] = "cancelled"
    appointment_id: int
