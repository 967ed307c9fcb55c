"""The exposed functions (available_slots, book_appointment, cancel_appointment): signatures, and bodies on asyncpg."""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from bookbench.fakes.postgrest.casts import cast, iso
from bookbench.fakes.postgrest.errors import PgrstError, raised
from target_service.queries import CANCEL  # the reference's cancellation, so outbox rows look alike

SCHEMA = "public"
# the reference service's booking grid (target_service/booking.py and models.py): 09:00-17:00 UTC, 30-minute
# slots, nothing later than 730 days ahead
DAY_START_HOUR = 9
DAY_END_HOUR = 17
SLOT = dt.timedelta(minutes=30)
HORIZON = dt.timedelta(days=730)
REF_PREFIX = "APT-"
_REF = re.compile(r"APT-(\d{9,18})")

# Result of a call: a JSON value to answer with, or None for a function returning void (204, no body)
Result = Any
Conn: TypeAlias = "asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]"
Body = Callable[[Conn, int, dict[str, Any]], Awaitable[Result]]


def booking_ref(appointment_id: int) -> str:
    return f"{REF_PREFIX}{appointment_id:09d}"


def appointment_id(ref: str | None) -> int | None:
    """The id a booking_ref names; None for anything that is not one we would have issued."""
    match = _REF.fullmatch(ref or "")
    if match is None or booking_ref(int(match.group(1))) != ref:
        return None
    return int(match.group(1))


@dataclass(frozen=True)
class Function:
    name: str
    params: dict[str, str]  # name -> PostgreSQL type, in declaration order
    returns: str  # for the OpenAPI document
    body: Body
    single: bool  # returns one composite (answered as one object) rather than a set (an array)


async def available_slots(conn: Conn, org_id: int, args: dict[str, Any]) -> Result:
    provider_id, day = args["p_provider_id"], args["p_day"]
    if provider_id is None or not await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM providers WHERE id = $1 AND org_id = $2)", provider_id, org_id):
        raise raised("provider not found")
    if day is None:
        return []
    opens = dt.datetime.combine(day, dt.time(DAY_START_HOUR), tzinfo=dt.UTC)
    closes = opens.replace(hour=DAY_END_HOUR)
    # bounded below by the longest duration (240 min) so an index on (org, provider, scheduled_at) serves it
    rows = await conn.fetch(
        "SELECT scheduled_at, scheduled_at + make_interval(mins => duration_minutes) AS ends FROM appointments "
        "WHERE org_id = $1 AND provider_id = $2 AND status <> 'cancelled' "
        "AND scheduled_at > $3::timestamptz - interval '240 minutes' AND scheduled_at < $4",
        org_id, provider_id, opens, closes)
    now = dt.datetime.now(dt.UTC)
    free = []
    slot = opens
    while slot + SLOT <= closes:
        end = slot + SLOT
        if now < slot <= now + HORIZON and not any(r["scheduled_at"] < end and r["ends"] > slot for r in rows):
            free.append({"slot_start": iso(slot), "slot_end": iso(end)})
        slot = end
    return free


_BOOK_REFUSALS = {
    "contact_not_found": "contact not found",
    "provider_not_found": "provider not found",
    "invalid": "invalid booking",
}


async def book_appointment(conn: Conn, org_id: int, args: dict[str, Any]) -> Result:
    start: dt.datetime | None = args["p_start"]
    now = dt.datetime.now(dt.UTC)
    if start is None or start > now + HORIZON or (start - dt.datetime(2000, 1, 1, tzinfo=dt.UTC)) % SLOT:
        # what availability offers is what can be booked: the same grid and horizon as the reference
        raise raised("invalid booking", "start must be on the 30-minute grid and within 730 days")
    # the function refuses any isolation but READ COMMITTED; say it, whatever the server's default is
    async with conn.transaction(isolation="read_committed"):
        row = await conn.fetchrow(
            "SELECT status, appointment_id FROM book_appointment_atomic($1, $2, $3, $4, $5)",
            org_id, args["p_contact_id"], args["p_provider_id"], start, args["p_duration_minutes"])
    assert row is not None  # the function returns exactly one row
    status = row["status"]
    if status == "booked":
        return {"booking_ref": booking_ref(row["appointment_id"]), "status": "booked", "scheduled_at": iso(start)}
    if status == "slot_taken":
        # as if an exclusion-style unique constraint had refused the insert: PostgREST answers 23505 with 409
        raise PgrstError(409, "23505", 'duplicate key value violates unique constraint "appointments_no_overlap"',
                         f"Key (provider_id, scheduled_at)=({args['p_provider_id']}, "
                         f"{start.strftime('%Y-%m-%d %H:%M:%S+00')}) already exists.")
    if status == "invalid":
        raise raised("invalid booking", "start must be in the future and duration 5-240 minutes")
    raise raised(_BOOK_REFUSALS[status])


async def cancel_appointment(conn: Conn, org_id: int, args: dict[str, Any]) -> Result:
    ident = appointment_id(args["p_booking_ref"])
    if ident is None:
        raise raised("appointment not found")
    if await conn.fetchval(CANCEL, org_id, ident) is not None:
        return None
    current = await conn.fetchval("SELECT status FROM appointments WHERE id = $1 AND org_id = $2", ident, org_id)
    if current is None:
        raise raised("appointment not found")
    if current == "cancelled":
        raise raised("appointment already cancelled")
    raise raised("appointment cannot be cancelled", f"its status is {current}")


FUNCTIONS: dict[str, Function] = {f.name: f for f in (
    Function("available_slots", {"p_provider_id": "bigint", "p_day": "date"},
             "SETOF record(slot_start timestamptz, slot_end timestamptz)", available_slots, single=False),
    Function("book_appointment", {"p_contact_id": "bigint", "p_provider_id": "bigint",
                                  "p_start": "timestamp with time zone", "p_duration_minutes": "integer"},
             "record(booking_ref text, status text, scheduled_at timestamptz)", book_appointment, single=True),
    Function("cancel_appointment", {"p_booking_ref": "text"}, "void", cancel_appointment, single=True),
)}


def resolve(name: str, body: dict[str, Any]) -> tuple[Function, dict[str, Any]]:
    """The function a call names with exactly these argument names, and its arguments cast; else PGRST202."""
    function = FUNCTIONS.get(name)
    if function is None or set(body) != set(function.params):
        raise _no_function(name, sorted(body))
    return function, {key: cast(body[key], type_name) for key, type_name in function.params.items()}


def _signature(function: Function) -> str:
    return f"{SCHEMA}.{function.name}({', '.join(sorted(function.params))})"


def _no_function(name: str, keys: list[str]) -> PgrstError:
    func = f"{SCHEMA}.{name}"
    if keys:
        message = f"Could not find the function {func}({', '.join(keys)}) in the schema cache"
        plural = "s" if len(keys) > 1 else ""
        searched = f" with parameter{plural} {', '.join(keys)}"
    else:
        message = f"Could not find the function {func} without parameters in the schema cache"
        searched = " without parameters"
    details = (f"Searched for the function {func}{searched} or with a single unnamed json/jsonb parameter, "
               "but no matches were found in the schema cache.")
    near = FUNCTIONS.get(name) or next(
        (FUNCTIONS[n] for n in difflib.get_close_matches(name, list(FUNCTIONS), n=1)), None)
    hint = f"Perhaps you meant to call the function {_signature(near)}" if near is not None else None
    return PgrstError(404, "PGRST202", message, details, hint)
