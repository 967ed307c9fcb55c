"""Vapi server-tool endpoints: POST /api/vapi/tools/<toolName> with Vapi's tool-call envelope.

A well-formed envelope always gets 200 and one entry in `results` per tool call: `result` holds the answer the
assistant speaks (a taken slot is an answer), `error` says which argument was wrong. A malformed envelope is a
422 like any other bad body.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from target_service import booking, errors, strict_json
from target_service.auth import OrgId
from target_service.dependency import Conn
from target_service.models import AppointmentRef, AvailabilityQuery, BookingRequest, ContactRef
from target_service.strict_json import StrictJSONRoute

router = APIRouter(prefix="/api/vapi/tools", tags=["vapi"], route_class=StrictJSONRoute)


class ToolFunction(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class ToolCall(BaseModel):
    id: str = Field(min_length=1, max_length=200)
    function: ToolFunction


class ToolMessage(BaseModel):
    model_config = ConfigDict(extra="allow")
    toolCallList: list[ToolCall] = Field(min_length=1, max_length=20)  # Vapi's field name


class ToolEnvelope(BaseModel):
    model_config = ConfigDict(extra="allow")
    message: ToolMessage


class ToolResult(BaseModel):
    toolCallId: str  # Vapi's field name
    result: str | None = None
    error: str | None = None


class ToolResponse(BaseModel):
    results: list[ToolResult]


async def _check_availability(conn: asyncpg.Connection, org_id: int, args: dict[str, Any]) -> str:
    q = AvailabilityQuery.model_validate(args)
    found = await booking.availability(conn, org_id, q.provider_id, q.date)
    if not found.free_slots:
        return f"No free slots with provider {q.provider_id} on {q.date.isoformat()}."
    times = ", ".join(s.start.strftime("%H:%M") for s in found.free_slots)
    return f"Free slots on {q.date.isoformat()} (UTC): {times}."


async def _lookup_upcoming(conn: asyncpg.Connection, org_id: int, args: dict[str, Any]) -> str:
    ref = ContactRef.model_validate(args)
    found = await booking.upcoming(conn, org_id, ref.contact_id)
    if found.appointment is None:
        return "No upcoming appointment."
    a = found.appointment
    return f"Upcoming appointment {a.id} on {a.scheduled_at.isoformat()} with provider {a.provider_id}."


async def _book(conn: asyncpg.Connection, org_id: int, args: dict[str, Any]) -> str:
    req = BookingRequest.model_validate(args)
    done = await booking.book(conn, org_id, req)
    return f"Booked: appointment {done.appointment_id} at {req.start.isoformat()}."


async def _cancel(conn: asyncpg.Connection, org_id: int, args: dict[str, Any]) -> str:
    ref = AppointmentRef.model_validate(args)
    done = await booking.cancel(conn, org_id, ref.appointment_id)
    return f"Cancelled appointment {done.appointment_id}."


_MAX_NAME_SHOWN = 40
Tool = Callable[[asyncpg.Connection, int, dict[str, Any]], Awaitable[str]]
TOOLS: dict[str, Tool] = {
    "checkAvailability": _check_availability,
    "lookupUpcomingAppointment": _lookup_upcoming,
    "bookClinicAppointment": _book,
    "cancelAppointment": _cancel,
}


def _argument_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "arguments"
    return f"invalid argument {where}: {first['msg']}"


async def _run_call(tool: Tool, tool_name: str, call: ToolCall, conn: asyncpg.Connection, org_id: int) -> ToolResult:
    if call.function.name != tool_name:
        return ToolResult(toolCallId=call.id, error=f"tool call names {call.function.name!r}, "
                                                    f"but this endpoint serves {tool_name!r}")
    args = call.function.arguments
    if isinstance(args, str):
        try:
            args = strict_json.loads(args, "arguments") if args.strip() else {}
        except strict_json.InvalidJSON as exc:
            return ToolResult(toolCallId=call.id, error=str(exc.detail))
        if not isinstance(args, dict):
            return ToolResult(toolCallId=call.id, error="arguments must be a JSON object")
    try:
        return ToolResult(toolCallId=call.id, result=await tool(conn, org_id, args))
    except ValidationError as exc:
        return ToolResult(toolCallId=call.id, error=_argument_error(exc))
    except booking.Refusal as refusal:
        # conflicts and not-found are answers the assistant can speak, not failures
        return ToolResult(toolCallId=call.id, result=f"{refusal.code}: {refusal.message}")
    except asyncpg.InvalidTransactionStateError as exc:
        # the envelope was well-formed: the call fails, with the cause, and the response stays a 200
        return ToolResult(toolCallId=call.id, error=f"service unavailable: {errors.misconfiguration(exc)}")


def _label(name: str) -> str:
    """A name the client sent, short and escaped: never echoed back whole (it can be kilobytes, or markup)."""
    shown = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "_-.") else "?" for ch in name[:_MAX_NAME_SHOWN])
    return f"'{shown}'" + ("..." if len(name) > _MAX_NAME_SHOWN else "")


@router.post("/{tool_name}", response_model=ToolResponse)
async def call_tool(tool_name: str, envelope: ToolEnvelope, org_id: OrgId, conn: Conn) -> ToolResponse:
    tool = TOOLS.get(tool_name)
    if tool is None:
        raise booking.Refusal(404, "unknown_tool", f"unknown tool {_label(tool_name)}; known: {', '.join(TOOLS)}")
    results = [await _run_call(tool, tool_name, call, conn, org_id) for call in envelope.message.toolCallList]
    return ToolResponse(results=results)
