"""The four operations of a voice-agent call against the reference service, as requests and answers: one place
for their paths, Vapi envelope and how a booking answer names its appointment (the warm-up and the Locust caller
both use it). Imports no Locust, so the pipeline may import it."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from typing import Any

TOOLS = ("checkAvailability", "lookupUpcomingAppointment", "bookClinicAppointment", "cancelAppointment")
# Vapi's tool result is a sentence for the voice agent ("Booked: appointment 123 at ..."): the only place an id
# is read from text; REST answers JSON
VAPI_BOOKED = re.compile(r"Booked: appointment (\d+) ")


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    query: dict[str, str] | None
    body: dict[str, Any] | None


def rest(tool: str, args: dict[str, Any]) -> Call:
    """The REST form of one operation; `args` holds the Vapi arguments (providerId, contactId, ...)."""
    if tool == "checkAvailability":
        return Call("GET", f"/api/v1/providers/{args['providerId']}/availability", {"date": str(args["date"])}, None)
    if tool == "lookupUpcomingAppointment":
        return Call("GET", f"/api/v1/contacts/{args['contactId']}/appointments/upcoming", None, None)
    if tool == "bookClinicAppointment":
        body = {k: args[k] for k in ("contactId", "providerId", "start", "durationMinutes")}
        return Call("POST", "/api/v1/appointments", None, body)
    if tool == "cancelAppointment":
        return Call("POST", f"/api/v1/appointments/{args['appointmentId']}/cancel", None, None)
    raise ValueError(f"unknown operation {tool!r}")


def vapi(tool: str, args: dict[str, Any]) -> Call:
    """The same operation as a Vapi server-tool call: one tool call in Vapi's envelope."""
    wanted = {
        "checkAvailability": ("providerId", "date"), "lookupUpcomingAppointment": ("contactId",),
        "bookClinicAppointment": ("contactId", "providerId", "start", "durationMinutes"),
        "cancelAppointment": ("appointmentId",)}[tool]
    call = {"id": f"c{random.getrandbits(32)}", "type": "function",
            "function": {"name": tool, "arguments": {k: args[k] for k in wanted}}}
    return Call("POST", f"/api/vapi/tools/{tool}", None, {"message": {"type": "tool-calls", "toolCallList": [call]}})


def request(protocol: str, tool: str, args: dict[str, Any]) -> Call:
    return vapi(tool, args) if protocol == "vapi" else rest(tool, args)


def booked_id(protocol: str, status: int, text: str) -> int | None:
    """The new appointment's id from a booking answer; None for a taken slot or a failed call."""
    if status not in (200, 201):
        return None
    try:
        if protocol == "vapi":
            found = VAPI_BOOKED.match(str(json.loads(text)["results"][0].get("result", "")))
            return int(found.group(1)) if found else None
        return int(json.loads(text)["appointment_id"])
    except (ValueError, KeyError, TypeError, IndexError, AttributeError):
        return None  # a 409 (slot taken) carries an error body, not an appointment
