"""The two providers on their real wire formats: Twilio's Messages API and Google Calendar v3 with an OAuth2 access
token refreshed from a refresh token. Each call returns an Outcome; nothing here touches the database."""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from target_service.notify import IDEMPOTENCY_HEADER
from target_service.notify.settings import NotifySettings


@dataclass(frozen=True)
class Outcome:
    ok: bool
    error: str = ""
    retryable: bool = True
    retry_after_s: float | None = None  # a 429's Retry-After
    # counts toward opening the breaker: the provider is failing (5xx, timeout, refused), not rate limiting us
    provider_fault: bool = False
    conflict: bool = False


@dataclass(frozen=True)
class Answer:
    """What the dispatcher keeps of an HTTP answer (read in full, so the connection goes back to the pool)."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        import json

        return json.loads(self.body)


# what a request can raise instead of answering: refused, reset, timed out
TRANSPORT_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


async def request(session: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> Answer:
    async with session.request(method, url, **kwargs) as resp:
        return Answer(resp.status, {k.lower(): v for k, v in resp.headers.items()}, await resp.read())


def _retry_after(resp: Answer) -> float | None:
    try:
        return max(0.0, float(resp.headers.get("retry-after", "")))
    except ValueError:
        return None


def classify(resp: Answer) -> Outcome:
    """A non-2xx answer: 429 waits as told, 5xx and 408 are the provider's fault, other 4xx are final."""
    code = resp.status
    text = f"HTTP {code}"
    if code == 429:
        return Outcome(False, text, retry_after_s=_retry_after(resp))
    if code >= 500 or code == 408:
        return Outcome(False, text, provider_fault=True)
    return Outcome(False, f"{text}: {resp.body[:200].decode(errors='replace')}", retryable=False)


def transport_failure(exc: BaseException) -> Outcome:
    return Outcome(False, f"{type(exc).__name__}: {exc}"[:300], provider_fault=True)


class Sms:
    """POST {base}/2010-04-01/Accounts/{sid}/Messages.json (form To, From, Body; HTTP Basic)."""

    def __init__(self, s: NotifySettings) -> None:
        self.s = s
        self.url = f"{s.sms_base_url.rstrip('/')}/2010-04-01/Accounts/{quote(s.twilio_account_sid)}/Messages.json"
        # HTTP Basic built here: aiohttp 3.14 deprecates its `auth=BasicAuth(...)` argument (warnings are errors)
        token = base64.b64encode(f"{s.twilio_account_sid}:{s.twilio_auth_token}".encode()).decode()
        self.authorization = f"Basic {token}"

    async def send(self, client: aiohttp.ClientSession, payload: dict[str, Any], key: str) -> Outcome:
        try:
            resp = await request(client, "POST", self.url, data={"To": payload["to"], "From": self.s.twilio_from,
                                                                 "Body": payload["body"]},
                                 headers={"Authorization": self.authorization, IDEMPOTENCY_HEADER: key})
        except TRANSPORT_ERRORS as exc:
            return transport_failure(exc)
        return Outcome(True) if resp.status in (200, 201) else classify(resp)


class Calendar:
    """Google Calendar v3: events.list of the slot (conflict check), events.insert with a client-chosen id (a retry
    answers 409 instead of creating a second event), events.delete; a 401 refreshes the token once."""

    def __init__(self, s: NotifySettings) -> None:
        self.s = s
        self.base = f"{s.calendar_base_url.rstrip('/')}/calendar/v3/calendars"
        self.token: str | None = None
        self.expires = 0.0

    async def _token(self, client: aiohttp.ClientSession, force: bool = False) -> str | Outcome:
        if not force and self.token and time.monotonic() < self.expires - 30:
            return self.token
        try:
            resp = await request(client, "POST", self.s.google_token_url, data={
                "grant_type": "refresh_token", "client_id": self.s.google_client_id,
                "client_secret": self.s.google_client_secret, "refresh_token": self.s.google_refresh_token})
        except TRANSPORT_ERRORS as exc:
            return transport_failure(exc)
        if resp.status != 200:
            return classify(resp)
        body = resp.json()
        self.token = str(body["access_token"])
        self.expires = time.monotonic() + float(body.get("expires_in", 3600))
        return self.token

    async def _call(self, client: aiohttp.ClientSession, method: str, url: str, key: str | None = None,
                    **kwargs: Any) -> Answer | Outcome:
        """`key`: the idempotency key of a delivering call (None for a read)."""
        for attempt in (1, 2):
            token = await self._token(client, force=attempt == 2)
            if isinstance(token, Outcome):
                return token
            headers = {"Authorization": f"Bearer {token}"} | ({IDEMPOTENCY_HEADER: key} if key else {})
            try:
                resp = await request(client, method, url, headers=headers, **kwargs)
            except TRANSPORT_ERRORS as exc:
                return transport_failure(exc)
            if resp.status != 401:
                return resp
        return Outcome(False, "HTTP 401 after a token refresh")

    async def insert(self, client: aiohttp.ClientSession, payload: dict[str, Any], key: str) -> Outcome:
        events = f"{self.base}/{quote(payload['calendar_id'], safe='')}/events"
        listed = await self._call(client, "GET", events, params={
            "timeMin": payload["start"], "timeMax": payload["end"], "singleEvents": "true"})
        if isinstance(listed, Outcome):
            return listed
        if listed.status != 200:
            return classify(listed)
        # check before creating (the seed's mitigation): someone else's event in the slot is flagged for staff;
        # the booking stands, so the event is still created
        conflict = any(item.get("id") != payload["event_id"] and item.get("status") != "cancelled"
                       for item in listed.json().get("items", []))
        resp = await self._call(client, "POST", events, key, json={
            "id": payload["event_id"], "summary": payload["summary"],
            "start": {"dateTime": payload["start"]}, "end": {"dateTime": payload["end"]}})
        if isinstance(resp, Outcome):
            return resp
        if resp.status in (200, 409):  # 409: created by an earlier attempt whose answer was lost
            return Outcome(True, conflict=conflict)
        return classify(resp)

    async def delete(self, client: aiohttp.ClientSession, payload: dict[str, Any], key: str) -> Outcome:
        url = f"{self.base}/{quote(payload['calendar_id'], safe='')}/events/{quote(payload['event_id'], safe='')}"
        resp = await self._call(client, "DELETE", url, key)
        if isinstance(resp, Outcome):
            return resp
        # 404 / 410: never created or already deleted; either way the event is gone
        return Outcome(True) if resp.status in (200, 204, 404, 410) else classify(resp)
