"""Fake SMS gateway (Twilio's Messages API) and calendar (Google Calendar v3 + OAuth2 token endpoint) as real HTTP
servers. They accept what the real services accept on the same paths, record every accepted message with its
receive time (one JSON line each, flushed at once), and inject the faults of the current scenario.

Every delivering request (an SMS, an event insert or delete) carries the dispatcher's idempotency key (the outbox
row's dedup key, in the `Idempotency-Key` header). A request whose key was already answered with a success is a
redelivery (a dispatcher died, or timed out, after the first one arrived): it gets the first answer again, is
recorded with `"redelivery": true`, and is not delivered a second time.

Admin endpoints (bookbench only): PUT /_bookbench/faults sets the faults, their windows counted from that moment;
GET /_bookbench/state returns counters (tokens issued, events present, redeliveries recognised).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import random
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bookbench.artifacts.files import append_text
from bookbench.config.notifications import ProviderFaults
from target_service.notify import IDEMPOTENCY_HEADER

# Starlette, not FastAPI: a fake runs beside the service it fakes for, on the same cores, and FastAPI's import and
# per-request validation were most of its start (~0.3 CPU-s, paid by every run with notifications) and of its work

Z95 = 1.6448536269514722  # the standard normal's 95th percentile


def _missing(*names: str) -> Response:
    return JSONResponse({"error": {"code": 400, "message": f"required query parameter(s) missing: {', '.join(names)}"}},
                        status_code=400)


async def _form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (what Twilio and OAuth2 token endpoints take)."""
    return {k: v[0] for k, v in parse_qs((await request.body()).decode(), keep_blank_values=True).items()}


class FaultState:
    """The faults in force and the clock their windows count from."""

    def __init__(self) -> None:
        self.faults = ProviderFaults()
        self.t0 = time.time()
        self.rng = random.Random(7)
        # when each injected 429 was answered: a client's retry can be held to its Retry-After from the provider's
        # own clock, whenever the client's attempts happened to land
        self.rate_limited_at: list[float] = []

    def set(self, faults: ProviderFaults) -> None:
        self.faults, self.t0 = faults, time.time()

    def _in(self, windows: list[Any]) -> Any:
        now = time.time() - self.t0
        return next((w for w in windows if w.start_s <= now < w.start_s + w.length_s), None)

    async def before(self) -> Response | None:
        """Sleep the configured latency, then an injected answer if one applies (None: serve normally)."""
        f = self.faults
        if f.latency is not None:
            sigma = math.log(f.latency.p95_ms / f.latency.median_ms) / Z95
            await asyncio.sleep(f.latency.median_ms * math.exp(sigma * self.rng.gauss(0, 1)) / 1000)
        if self._in(f.outages) is not None:
            return JSONResponse({"message": "service unavailable (injected outage)"}, status_code=503)
        burst = self._in(f.rate_limits)
        if burst is not None:
            self.rate_limited_at.append(time.time())
            return JSONResponse({"message": "too many requests (injected)"}, status_code=429,
                                headers={"Retry-After": f"{burst.retry_after_s:g}"})
        if f.error_rate and self.rng.random() < f.error_rate:
            return JSONResponse({"message": "internal error (injected)"}, status_code=503)
        return None


class Recorder:
    """Appends each accepted message to the record file and keeps it by key for /_bookbench/received."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.by_key: dict[str, list[dict[str, Any]]] = {}

    def add(self, record: dict[str, Any]) -> None:
        entry = {"t": time.time(), **record}
        self.by_key.setdefault(str(record["key"]), []).append(entry)
        if self.path is not None:
            append_text(self.path, json.dumps(entry) + "\n")


class Answered:
    """The first successful answer to each idempotency key, so that a redelivery gets it again.

    Callers look up and remember with no `await` in between: in the fake's one event loop, two copies of a request
    arriving together cannot both pass as the first."""

    def __init__(self, rec: Recorder, counters: dict[str, Any]) -> None:
        self.rec = rec
        self.counters = counters
        self.answers: dict[str, tuple[int, Any]] = {}
        counters["redeliveries"] = 0

    @staticmethod
    def key(request: Request) -> str | None:
        return request.headers.get(IDEMPOTENCY_HEADER) or None

    def replay(self, request: Request, record: dict[str, Any]) -> Response | None:
        """The first answer again when this request's key was already answered (recorded as a redelivery), or None:
        serve it as new."""
        key = self.key(request)
        if key is None or key not in self.answers:
            return None
        self.rec.add({**record, "key": key, "redelivery": True})
        self.counters["redeliveries"] += 1
        status, body = self.answers[key]
        return Response(status_code=status) if body is None else JSONResponse(body, status_code=status)

    def remember(self, request: Request, status: int, body: Any) -> Response:
        key = self.key(request)
        if key is not None:
            self.answers[key] = (status, body)
        return Response(status_code=status) if body is None else JSONResponse(body, status_code=status)


def _admin(state: FaultState, rec: Recorder, extra: dict[str, Any],
           on_faults: Callable[[ProviderFaults], None] | None = None) -> list[Route]:
    async def set_faults(request: Request) -> Response:
        try:
            faults = ProviderFaults.model_validate_json(await request.body())
        except ValidationError as exc:  # bad JSON or a bad field: say which, and keep the faults in force
            return JSONResponse({"error": "invalid_faults", "detail": exc.errors(include_url=False,
                                                                                include_input=False)},
                                status_code=422)
        state.set(faults)
        if on_faults is not None:
            on_faults(state.faults)
        return JSONResponse({"ok": True})

    async def get_state(request: Request) -> Response:
        return JSONResponse({"faults": state.faults.model_dump(mode="json"), "rate_limited_at": state.rate_limited_at,
                             **extra})

    async def received(request: Request) -> Response:
        key = request.query_params.get("key")
        return _missing("key") if key is None else JSONResponse(rec.by_key.get(key, []))

    return [Route("/_bookbench/faults", set_faults, methods=["PUT"]),
            Route("/_bookbench/state", get_state, methods=["GET"]),
            Route("/_bookbench/received", received, methods=["GET"])]


def sms_app(record: Path | None, account_sid: str, auth_token: str) -> Starlette:
    """Twilio: POST /2010-04-01/Accounts/{AccountSid}/Messages.json, form To/From/Body, HTTP Basic auth."""
    state, rec = FaultState(), Recorder(record)
    counters: dict[str, Any] = {"accepted": 0}
    answered = Answered(rec, counters)
    expected = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()

    async def messages(request: Request) -> Response:
        if request.path_params["sid"] != account_sid or request.headers.get("authorization") != expected:
            return JSONResponse({"code": 20003, "message": "Authenticate", "status": 401}, status_code=401)
        injected = await state.before()
        if injected is not None:
            return injected
        form = await _form(request)
        to, body = str(form.get("To", "")), str(form.get("Body", ""))
        again = answered.replay(request, {"channel": "sms", "op": "send", "to": to})
        if again is not None:
            return again
        if not to or not body:
            return JSONResponse({"code": 21604, "message": "A 'To' and a 'Body' are required", "status": 400},
                                status_code=400)
        # the key a retry of the same message carries; without it, the same recipient and text
        key = answered.key(request) or hashlib.sha256(f"{to}|{body}".encode()).hexdigest()
        rec.add({"channel": "sms", "op": "send", "key": key, "to": to, "body": body})
        counters["accepted"] += 1
        return answered.remember(request, 201, {"sid": "SM" + secrets.token_hex(16), "status": "queued", "to": to,
                                                "body": body})

    return Starlette(routes=[*_admin(state, rec, counters),
                             Route("/2010-04-01/Accounts/{sid}/Messages.json", messages, methods=["POST"])])


def calendar_app(record: Path | None, client_id: str, client_secret: str, refresh_token: str) -> Starlette:
    """Google: POST /token (refresh_token grant), and under /calendar/v3/calendars/{calendarId}/events: GET (list
    a window), POST (insert; a client-chosen id that exists answers 409), DELETE /{eventId}."""
    state, rec = FaultState(), Recorder(record)
    tokens: dict[str, float] = {}  # access token -> expiry
    # calendar -> event id -> event: a list call looks at one calendar, not every event of the run
    events: dict[str, dict[str, dict[str, Any]]] = {}
    counters: dict[str, Any] = {"tokens_issued": 0, "events": 0}
    answered = Answered(rec, counters)

    def expire_tokens(faults: ProviderFaults) -> None:
        if faults.token_ttl_s is not None:
            tokens.clear()  # every token handed out so far expires now: the next call gets a 401

    async def token(request: Request) -> Response:
        form = await _form(request)
        if (form.get("grant_type") != "refresh_token" or form.get("client_id") != client_id
                or form.get("client_secret") != client_secret or form.get("refresh_token") != refresh_token):
            return JSONResponse({"error": "invalid_grant"}, status_code=400)
        ttl = state.faults.token_ttl_s or 3600.0
        access = "ya29." + secrets.token_urlsafe(24)
        tokens[access] = time.time() + ttl
        counters["tokens_issued"] += 1
        return JSONResponse({"access_token": access, "expires_in": math.ceil(ttl), "token_type": "Bearer"})

    def authorized(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        access = header[7:] if header.startswith("Bearer ") else ""
        return tokens.get(access, 0) > time.time()

    def unauthorized() -> Response:
        return JSONResponse({"error": {"code": 401, "message": "Request had invalid authentication credentials."}},
                            status_code=401)

    def conflicting(calendar: str, start: str) -> bool:
        rate = state.faults.conflict_rate
        digest = hashlib.sha256(f"{calendar}|{start}".encode()).digest()
        return rate > 0 and int.from_bytes(digest[:4], "big") / 2**32 < rate

    async def list_events(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        calendar = request.path_params["calendar"]
        timeMin, timeMax = request.query_params.get("timeMin"), request.query_params.get("timeMax")
        if timeMin is None or timeMax is None:
            return _missing(*(name for name, value in (("timeMin", timeMin), ("timeMax", timeMax)) if value is None))
        injected = await state.before()
        if injected is not None:
            return injected
        items = [e for e in events.get(calendar, {}).values() if e["status"] != "cancelled"
                 and e["start"]["dateTime"] < timeMax and e["end"]["dateTime"] > timeMin]
        if conflicting(calendar, timeMin):  # someone's own event already in that slot
            items.append({"id": "foreign" + hashlib.sha256(timeMin.encode()).hexdigest()[:12], "status": "confirmed",
                          "summary": "Busy", "start": {"dateTime": timeMin}, "end": {"dateTime": timeMax}})
        return JSONResponse({"kind": "calendar#events", "items": items})

    async def insert(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        calendar = request.path_params["calendar"]
        injected = await state.before()
        if injected is not None:
            return injected
        body = await request.json()
        event_id = str(body.get("id", ""))
        # "duplicate" as well: the checks read it as "a second insert of an event the calendar already had"
        again = answered.replay(request, {"channel": "calendar", "op": "insert", "calendar": calendar,
                                          "duplicate": True})
        if again is not None:
            return again
        mine = events.setdefault(calendar, {})
        if event_id in mine:  # Google's own guard, for a second insert without our key: refused by its id
            rec.add({"channel": "calendar", "op": "insert", "key": event_id, "calendar": calendar, "duplicate": True})
            return JSONResponse({"error": {"code": 409, "message": "The requested identifier already exists."}},
                                status_code=409)
        event = {"id": event_id, "status": "confirmed", "summary": body.get("summary", ""),
                 "start": body.get("start", {}), "end": body.get("end", {})}
        mine[event_id] = event
        counters["events"] += 1
        rec.add({"channel": "calendar", "op": "insert", "key": event_id, "calendar": calendar})
        return answered.remember(request, 200, {**event})  # a copy: a later delete marks the event

    async def delete(request: Request) -> Response:
        if not authorized(request):
            return unauthorized()
        calendar, event_id = request.path_params["calendar"], request.path_params["event_id"]
        injected = await state.before()
        if injected is not None:
            return injected
        again = answered.replay(request, {"channel": "calendar", "op": "delete", "calendar": calendar})
        if again is not None:
            return again
        event = events.get(calendar, {}).get(event_id)
        if event is None:
            return JSONResponse({"error": {"code": 404, "message": "Not Found"}}, status_code=404)
        if event["status"] == "cancelled":
            return JSONResponse({"error": {"code": 410, "message": "Resource has been deleted"}}, status_code=410)
        event["status"] = "cancelled"
        counters["events"] -= 1
        rec.add({"channel": "calendar", "op": "delete", "key": f"{event_id}-delete", "calendar": calendar})
        return answered.remember(request, 204, None)

    events_path = "/calendar/v3/calendars/{calendar}/events"
    return Starlette(routes=[*_admin(state, rec, counters, expire_tokens),
                             Route("/token", token, methods=["POST"]),
                             Route(events_path, list_events, methods=["GET"]),
                             Route(events_path, insert, methods=["POST"]),
                             Route(events_path + "/{event_id}", delete, methods=["DELETE"])])
