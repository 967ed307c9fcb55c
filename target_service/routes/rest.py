"""REST endpoints under /api/v1: availability, upcoming appointment, book, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from target_service import booking
from target_service.auth import OrgId
from target_service.dependency import Conn
from target_service.models import MAX_ID, Availability, Booked, BookingRequest, CalendarDate, Cancelled, Upcoming
from target_service.strict_json import StrictJSONRoute

router = APIRouter(prefix="/api/v1", tags=["booking"], route_class=StrictJSONRoute)

PathId = Annotated[int, Path(gt=0, le=MAX_ID)]


@router.get("/providers/{provider_id}/availability", response_model=Availability)
async def get_availability(provider_id: PathId, date: Annotated[CalendarDate, Query()], org_id: OrgId,
                           conn: Conn) -> Availability:
    return await booking.availability(conn, org_id, provider_id, date)


@router.get("/contacts/{contact_id}/appointments/upcoming", response_model=Upcoming)
async def get_upcoming(contact_id: PathId, org_id: OrgId, conn: Conn) -> Upcoming:
    return await booking.upcoming(conn, org_id, contact_id)


@router.post("/appointments", response_model=Booked, status_code=201,
             responses={409: {"description": "the slot overlaps an existing appointment"}})
async def post_appointment(body: BookingRequest, org_id: OrgId, conn: Conn) -> Booked:
    return await booking.book(conn, org_id, body)


@router.post("/appointments/{appointment_id}/cancel", response_model=Cancelled,
             responses={404: {"description": "no such appointment in this org"},
                        409: {"description": "not in booked state"}})
async def post_cancel(appointment_id: PathId, org_id: OrgId, conn: Conn) -> Cancelled:
    return await booking.cancel(conn, org_id, appointment_id)
