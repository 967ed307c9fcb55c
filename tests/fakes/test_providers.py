"""The fake SMS gateway and calendar in process (httpx's ASGI transport): what they accept and refuse, idempotency
keys answering a repeat as the first time, the injected faults, the counters and the record file."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from starlette.applications import Starlette

from bookbench.config.notifications import ProviderFaults
from bookbench.fakes.providers import calendar_app, sms_app
from target_service.notify import IDEMPOTENCY_HEADER

T = TypeVar("T")
SID, TOKEN = "AC-test", "sms-secret"
MESSAGES = f"/2010-04-01/Accounts/{SID}/Messages.json"
BASIC = {"Authorization": "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()}
GRANT = {"grant_type": "refresh_token", "client_id": "cid", "client_secret": "csecret", "refresh_token": "rtoken"}
EVENTS = "/calendar/v3/calendars/clinic-1/events"
SLOT = {"start": {"dateTime": "2030-01-01T10:00:00Z"}, "end": {"dateTime": "2030-01-01T10:30:00Z"}}


def with_client(app: Starlette, script: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    """Runs `script` against one app instance: the fakes keep their state in the app."""
    async def main() -> T:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://fake.test") as client:
            return await script(client)

    return asyncio.run(main())


def sms(record: Path | None = None) -> Starlette:
    return sms_app(record, SID, TOKEN)


def calendar() -> Starlette:
    return calendar_app(None, GRANT["client_id"], GRANT["client_secret"], GRANT["refresh_token"])


def text(to: str = "+15550100001", body: str = "Your appointment is booked") -> dict[str, str]:
    return {"To": to, "From": "+15550100000", "Body": body}


async def state(client: httpx.AsyncClient) -> dict[str, Any]:
    return dict((await client.get("/_bookbench/state")).json())


async def faults(client: httpx.AsyncClient, **set_: Any) -> None:
    resp = await client.put("/_bookbench/faults", json=set_)
    assert resp.status_code == 200, resp.text


async def bearer(client: httpx.AsyncClient) -> dict[str, str]:
    resp = await client.post("/token", data=GRANT)
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


# -- SMS (Twilio's Messages API) -----------------------------------------------------------------------------------

def test_sms_accepts_a_message_records_it_and_counts_it(tmp_path: Path) -> None:
    record = tmp_path / "sms.jsonl"

    async def script(client: httpx.AsyncClient) -> None:
        resp = await client.post(MESSAGES, data=text(), headers={**BASIC, IDEMPOTENCY_HEADER: "k1"})
        assert resp.status_code == 201 and resp.json()["status"] == "queued" and resp.json()["sid"].startswith("SM")
        assert (await state(client))["accepted"] == 1
        (got,) = (await client.get("/_bookbench/received", params={"key": "k1"})).json()
        assert got["to"] == "+15550100001" and got["body"] == "Your appointment is booked" and "redelivery" not in got

    with_client(sms(record), script)
    (line,) = record.read_text().splitlines()
    assert json.loads(line)["key"] == "k1"  # written and flushed as it was accepted


@pytest.mark.parametrize(("path", "headers"), [
    (MESSAGES, {}),
    (MESSAGES, {"Authorization": "Basic " + base64.b64encode(f"{SID}:wrong".encode()).decode()}),
    ("/2010-04-01/Accounts/AC-other/Messages.json", BASIC),
])
def test_sms_refuses_wrong_credentials_like_twilio(path: str, headers: dict[str, str]) -> None:
    async def script(client: httpx.AsyncClient) -> None:
        resp = await client.post(path, data=text(), headers=headers)
        assert resp.status_code == 401 and resp.json()["code"] == 20003
        assert (await state(client))["accepted"] == 0

    with_client(sms(), script)


@pytest.mark.parametrize("form", [{"To": "+15550100001"}, {"Body": "hello"}, {"To": "", "Body": "hello"}])
def test_sms_refuses_a_message_without_recipient_or_text(form: dict[str, str]) -> None:
    async def script(client: httpx.AsyncClient) -> None:
        resp = await client.post(MESSAGES, data=form, headers=BASIC)
        assert resp.status_code == 400 and resp.json()["code"] == 21604
        assert (await state(client))["accepted"] == 0

    with_client(sms(), script)


@pytest.mark.parametrize(("app", "path", "named"), [
    ("sms", "/_bookbench/received", "key"),
    ("calendar", EVENTS + "?timeMin=2030-01-01T10:00:00Z", "timeMax"),
    ("calendar", EVENTS + "?timeMax=2030-01-01T10:00:00Z", "timeMin"),
    ("calendar", EVENTS, "timeMin, timeMax"),
])
def test_a_missing_query_parameter_is_a_400_naming_it(app: str, path: str, named: str) -> None:
    async def script(client: httpx.AsyncClient) -> None:
        headers = await bearer(client) if app == "calendar" else {}
        resp = await client.get(path, headers=headers)
        assert resp.status_code == 400, resp.text
        assert resp.json()["error"]["message"] == f"required query parameter(s) missing: {named}", resp.text

    with_client(sms() if app == "sms" else calendar(), script)


def test_sms_answers_a_repeated_idempotency_key_as_the_first_time_without_sending_again() -> None:
    async def script(client: httpx.AsyncClient) -> None:
        first = await client.post(MESSAGES, data=text(), headers={**BASIC, IDEMPOTENCY_HEADER: "row-7"})
        again = await client.post(MESSAGES, data=text(), headers={**BASIC, IDEMPOTENCY_HEADER: "row-7"})
        other = await client.post(MESSAGES, data=text(), headers={**BASIC, IDEMPOTENCY_HEADER: "row-8"})
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()  # the same message sid: one message
        assert other.json()["sid"] != first.json()["sid"]
        s = await state(client)
        assert s["accepted"] == 2 and s["redeliveries"] == 1
        received = (await client.get("/_bookbench/received", params={"key": "row-7"})).json()
        assert [r.get("redelivery", False) for r in received] == [False, True]

    with_client(sms(), script)


def test_sms_without_an_idempotency_key_sends_every_time() -> None:
    async def script(client: httpx.AsyncClient) -> None:
        for _ in range(2):
            assert (await client.post(MESSAGES, data=text(), headers=BASIC)).status_code == 201
        s = await state(client)
        assert s["accepted"] == 2 and s["redeliveries"] == 0

    with_client(sms(), script)


@pytest.mark.parametrize(("set_", "status", "retry_after"), [
    ({"outages": [{"start_s": 0, "length_s": 60}]}, 503, None),
    ({"rate_limits": [{"start_s": 0, "length_s": 60, "retry_after_s": 2.5}]}, 429, "2.5"),
    ({"error_rate": 1.0}, 503, None),
])
def test_sms_injects_the_faults_it_is_given(set_: dict[str, Any], status: int, retry_after: str | None) -> None:
    async def script(client: httpx.AsyncClient) -> None:
        await faults(client, **set_)
        resp = await client.post(MESSAGES, data=text(), headers={**BASIC, IDEMPOTENCY_HEADER: "k"})
        assert resp.status_code == status and "injected" in resp.json()["message"]
        assert resp.headers.get("retry-after") == retry_after
        s = await state(client)
        assert s["accepted"] == 0 and s["faults"] == ProviderFaults.model_validate(set_).model_dump()
        # a fault answer is not a success: the same key afterwards is delivered, not replayed
        await faults(client)
        resp = await client.post(MESSAGES, data=text(), headers={**BASIC, IDEMPOTENCY_HEADER: "k"})
        assert resp.status_code == 201 and (await state(client))["redeliveries"] == 0

    with_client(sms(), script)


def test_a_fault_window_counts_from_when_it_was_set() -> None:
    async def script(client: httpx.AsyncClient) -> None:
        await faults(client, outages=[{"start_s": 30, "length_s": 10}])  # not yet in force
        assert (await client.post(MESSAGES, data=text(), headers=BASIC)).status_code == 201

    with_client(sms(), script)


def test_injected_latency_delays_the_answer() -> None:
    async def script(client: httpx.AsyncClient) -> float:
        await faults(client, latency={"median_ms": 50, "p95_ms": 50})  # sigma 0: exactly the median
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert (await client.post(MESSAGES, data=text(), headers=BASIC)).status_code == 201
        return loop.time() - started

    assert with_client(sms(), script) >= 0.05


def test_a_fault_setting_the_model_refuses_changes_nothing() -> None:
    async def script(client: httpx.AsyncClient) -> None:
        await faults(client, error_rate=0.5)
        # refused with a 422 naming the field; the faults in force stay as they were
        for body in ({"error_rate": 2}, "not json"):
            resp = await client.put("/_bookbench/faults", content=body if isinstance(body, str) else None,
                                    json=None if isinstance(body, str) else body)
            assert resp.status_code == 422, resp.text
            assert resp.json()["error"] == "invalid_faults"
        assert "error_rate" in str((await client.put("/_bookbench/faults", json={"error_rate": 2})).json())
        assert (await state(client))["faults"]["error_rate"] == 0.5

    with_client(sms(), script)


# -- calendar (Google Calendar v3 and its OAuth2 token endpoint) --------------------------------------------------

@pytest.mark.parametrize("change", [{"grant_type": "password"}, {"client_secret": "x"}, {"refresh_token": "x"},
                                    {"client_id": "x"}])
def test_the_token_endpoint_refuses_a_wrong_grant(change: dict[str, str]) -> None:
    async def script(client: httpx.AsyncClient) -> None:
        resp = await client.post("/token", data={**GRANT, **change})
        assert resp.status_code == 400 and resp.json() == {"error": "invalid_grant"}
        assert (await state(client))["tokens_issued"] == 0

    with_client(calendar(), script)


def test_calendar_calls_need_a_live_token() -> None:
    async def script(client: httpx.AsyncClient) -> None:
        for headers in ({}, {"Authorization": "Bearer ya29.made-up"}):
            resp = await client.post(EVENTS, json={"id": "e1", **SLOT}, headers=headers)
            assert resp.status_code == 401
        auth = await bearer(client)
        assert (await client.post(EVENTS, json={"id": "e1", **SLOT}, headers=auth)).status_code == 200
        # token_ttl_s expires every token handed out so far: 401 until the client refreshes
        await faults(client, token_ttl_s=600)
        assert (await client.delete(f"{EVENTS}/e1", headers=auth)).status_code == 401
        assert (await client.delete(f"{EVENTS}/e1", headers=await bearer(client))).status_code == 204
        assert (await state(client))["tokens_issued"] == 2

    with_client(calendar(), script)


def test_calendar_insert_list_delete() -> None:
    async def script(client: httpx.AsyncClient) -> None:
        auth = await bearer(client)
        created = await client.post(EVENTS, json={"id": "e1", "summary": "Visit", **SLOT}, headers=auth)
        assert created.status_code == 200 and created.json()["id"] == "e1"
        window = {"timeMin": "2030-01-01T10:00:00Z", "timeMax": "2030-01-01T10:30:00Z"}
        assert [e["id"] for e in (await client.get(EVENTS, params=window, headers=auth)).json()["items"]] == ["e1"]
        later = {"timeMin": "2030-01-01T11:00:00Z", "timeMax": "2030-01-01T11:30:00Z"}
        assert (await client.get(EVENTS, params=later, headers=auth)).json()["items"] == []
        other = "/calendar/v3/calendars/clinic-2/events"  # each calendar holds its own events
        assert (await client.get(other, params=window, headers=auth)).json()["items"] == []
        assert (await state(client))["events"] == 1
        assert (await client.delete(f"{EVENTS}/e1", headers=auth)).status_code == 204
        assert (await client.get(EVENTS, params=window, headers=auth)).json()["items"] == []
        assert (await client.delete(f"{EVENTS}/e1", headers=auth)).status_code == 410  # deleted before
        assert (await client.delete(f"{EVENTS}/never", headers=auth)).status_code == 404
        assert (await state(client))["events"] == 0

    with_client(calendar(), script)


def test_calendar_replays_a_repeated_key_and_refuses_a_second_insert_of_an_id_without_one() -> None:
    async def script(client: httpx.AsyncClient) -> None:
        auth = await bearer(client)
        keyed = {**auth, IDEMPOTENCY_HEADER: "appt-1-calendar"}
        first = await client.post(EVENTS, json={"id": "e1", **SLOT}, headers=keyed)
        again = await client.post(EVENTS, json={"id": "e1", **SLOT}, headers=keyed)
        assert first.status_code == again.status_code == 200 and again.json() == first.json()
        # Google's own guard: the same event id without our key is a 409
        dup = await client.post(EVENTS, json={"id": "e1", **SLOT}, headers=auth)
        assert dup.status_code == 409
        deleting = {**auth, IDEMPOTENCY_HEADER: "appt-1-delete"}
        assert (await client.delete(f"{EVENTS}/e1", headers=deleting)).status_code == 204
        assert (await client.delete(f"{EVENTS}/e1", headers=deleting)).status_code == 204  # replayed, not 410
        s = await state(client)
        assert s["events"] == 0 and s["redeliveries"] == 2

    with_client(calendar(), script)


def test_calendar_conflict_rate_shows_someone_elses_event_in_the_slot() -> None:
    async def script(client: httpx.AsyncClient) -> None:
        auth = await bearer(client)
        await faults(client, conflict_rate=1.0)
        window = {"timeMin": "2030-01-01T10:00:00Z", "timeMax": "2030-01-01T10:30:00Z"}
        (item,) = (await client.get(EVENTS, params=window, headers=auth)).json()["items"]
        assert item["id"].startswith("foreign") and item["status"] == "confirmed"

    with_client(calendar(), script)


@pytest.mark.parametrize(("method", "path"), [("GET", EVENTS), ("POST", EVENTS), ("DELETE", f"{EVENTS}/e1")])
def test_calendar_injects_outages_on_every_call(method: str, path: str) -> None:
    async def script(client: httpx.AsyncClient) -> None:
        auth = await bearer(client)
        await faults(client, outages=[{"start_s": 0, "length_s": 60}])
        resp = await client.request(method, path, headers=auth, params={"timeMin": "a", "timeMax": "b"},
                                    json={"id": "e1", **SLOT} if method == "POST" else None)
        assert resp.status_code == 503
        assert (await state(client))["events"] == 0

    with_client(calendar(), script)
