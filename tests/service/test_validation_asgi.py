"""The service's validation and error paths in process (httpx's ASGI transport: no uvicorn, no PostgreSQL).

What needs no database is tested here, fast: bad JSON, bad fields, bad envelopes, bad credentials, oversize and
slow bodies, the deadline, a bug's 500, a database that is not there. The ASGI transport runs no lifespan, so the
app has no pool: where a route's dependencies would reach the database (the API-key lookup, the connection) they are
replaced by stand-ins that fail the test if anything touches them. Everything that needs the database to answer is
tested on the real stack (test_service_api.py and its neighbours).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from bookbench.db.embedded import free_port
from target_service.app import create_app
from target_service.auth import KeyCache, current_org
from target_service.dependency import connection
from target_service.settings import Settings
from target_service.strict_json import MAX_DEPTH

# nothing listens there: a pool pointed at it fails on its first connection attempt
UNREACHABLE = "postgresql://bookbench@127.0.0.1:{port}/nowhere"


class NoDatabase:
    """Stands in for the request's connection: a validation failure must be answered before any query runs."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the request reached the database (connection.{name}) instead of being refused")


def service(*, logged_in: bool = True, conn: Callable[[], AsyncIterator[Any]] | None = None,
            **settings: Any) -> FastAPI:
    """The real app factory; `logged_in` answers org 1 for any request (no key lookup), `conn` replaces the
    connection dependency (default: NoDatabase)."""
    app = create_app(Settings(database_url=UNREACHABLE.format(port=1), **settings))
    if logged_in:
        async def org() -> int:
            return 1

        async def no_database() -> AsyncIterator[Any]:
            yield NoDatabase()

        app.dependency_overrides[current_org] = org
        app.dependency_overrides[connection] = conn or no_database
    return app


async def _send(app: FastAPI, method: str, url: str, **kwargs: Any) -> httpx.Response:
    # raise_app_exceptions=False: a 500 is answered by the app (errors._unexpected) and then re-raised to the
    # server, as Starlette does; the test wants the answer a client would get
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://service.test") as client:
        return await client.request(method, url, **kwargs)


def call(app: FastAPI, method: str, url: str, **kwargs: Any) -> httpx.Response:
    return asyncio.run(_send(app, method, url, **kwargs))


def future(days: int = 3, minute: int = 0) -> str:
    base = dt.datetime.now(dt.UTC).replace(hour=10, minute=minute, second=0, microsecond=0)
    return (base + dt.timedelta(days=days)).isoformat()


def booking(**over: Any) -> dict[str, Any]:
    return {"contactId": 1, "providerId": 1, "start": future(), "durationMinutes": 30, **over}


def envelope(name: str = "checkAvailability", arguments: Any = None, tool_id: str = "call-1") -> dict[str, Any]:
    function = {"name": name} | ({} if arguments is None else {"arguments": arguments})
    return {"message": {"type": "tool-calls", "toolCallList": [{"id": tool_id, "function": function}]}}


def error_of(resp: httpx.Response, status: int, code: str) -> str:
    """The documented error body's detail, after checking status, code and that it is JSON."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert body["error"] == code, body
    return str(body["detail"])


def test_liveness_and_openapi_need_no_database() -> None:
    app = service(logged_in=False)
    assert call(app, "GET", "/healthz").json() == {"status": "ok"}
    paths = call(app, "GET", "/openapi.json").json()["paths"]
    assert "/api/v1/appointments" in paths and "/api/vapi/tools/{tool_name}" in paths


@pytest.mark.parametrize(("raw", "says"), [
    (b'{"contactId": 1', "body is not valid JSON"),
    (b'{"contactId": NaN}', "body is not valid JSON"),
    (b'{"contactId": 1, "contactId": 2}', "duplicate key 'contactId'"),
    (b'{"contactId": "a\\u0000b"}', "body.contactId contains a NUL character"),
    (b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1), f"nested deeper than {MAX_DEPTH} levels"),
    (b'{"contactId": "\\ud800"}', "body is not valid JSON"),  # a lone surrogate cannot be encoded back
])
def test_a_body_that_is_not_strict_json_is_a_400_saying_where(raw: bytes, says: str) -> None:
    resp = call(service(), "POST", "/api/v1/appointments", content=raw, headers={"content-type": "application/json"})
    assert says in error_of(resp, 400, "invalid_json")


@pytest.mark.parametrize(("over", "field", "problem"), [
    ({"contactId": None}, "body.contactId", "integer"),
    ({"contactId": True}, "body.contactId", "valid integer"),  # strict: true is not 1
    ({"contactId": "1"}, "body.contactId", "valid integer"),
    ({"providerId": 0}, "body.providerId", "greater than 0"),
    ({"providerId": 2**63}, "body.providerId", "less than or equal"),
    ({"start": "tomorrow"}, "body.start", "YYYY-MM-DD"),
    ({"start": "2001-01-01T10:00:00Z"}, "body.start", "must be in the future"),
    ({"start": future(minute=15)}, "body.start", "30-minute grid"),
    ({"start": future(days=5000)}, "body.start", "within 730 days"),
    ({"start": future().replace("+00:00", ".000000001Z")}, "body.start", "finer than microseconds"),
    ({"durationMinutes": 241}, "body.durationMinutes", "less than or equal to 240"),
    ({"durationMinutes": 30.0}, "body.durationMinutes", "valid integer"),
    ({"surprise": 1}, "body.surprise", "Extra inputs are not permitted"),
])
def test_a_bad_booking_field_is_a_422_naming_it(over: dict[str, Any], field: str, problem: str) -> None:
    resp = call(service(), "POST", "/api/v1/appointments", json=booking(**over))
    detail = error_of(resp, 422, "invalid_request")
    assert detail.startswith(f"{field}: ") and problem in detail, detail
    assert resp.json()["fields"][0]["field"] == field


def test_a_missing_field_is_named() -> None:
    b = booking()
    del b["providerId"]
    resp = call(service(), "POST", "/api/v1/appointments", json=b)
    assert error_of(resp, 422, "invalid_request") == "body.providerId: Field required"


@pytest.mark.parametrize("headers", [{"content-type": "text/plain"},
                                     {"content-type": "application/x-www-form-urlencoded"}, {}])
def test_a_body_not_sent_as_json_is_a_422_naming_the_body(headers: dict[str, str]) -> None:
    # FastAPI reads a JSON body only under a JSON content type: anything else reaches validation as raw bytes
    resp = call(service(), "POST", "/api/v1/appointments", content=b'{"contactId": 1}', headers=headers)
    assert error_of(resp, 422, "invalid_request").startswith("body: ")


def test_an_empty_body_is_a_422() -> None:
    resp = call(service(), "POST", "/api/v1/appointments", content=b"", headers={"content-type": "application/json"})
    assert error_of(resp, 422, "invalid_request") == "body: Field required"


@pytest.mark.parametrize(("url", "field"), [
    ("/api/v1/providers/0/availability?date={today}", "path.provider_id"),
    ("/api/v1/providers/abc/availability?date={today}", "path.provider_id"),
    (f"/api/v1/providers/{2**63}/availability?date={{today}}", "path.provider_id"),
    ("/api/v1/providers/1/availability", "query.date"),
    ("/api/v1/providers/1/availability?date=2026-13-01", "query.date"),
    ("/api/v1/providers/1/availability?date=0", "query.date"),
    ("/api/v1/providers/1/availability?date=1999-01-01", "query.date"),
    ("/api/v1/contacts/-1/appointments/upcoming", "path.contact_id"),
])
def test_bad_paths_and_queries_are_a_422_naming_the_parameter(url: str, field: str) -> None:
    resp = call(service(), "GET", url.format(today=dt.date.today().isoformat()))
    assert error_of(resp, 422, "invalid_request").startswith(f"{field}: ")


def test_an_unknown_route_is_a_json_404_and_a_wrong_method_a_405_with_allow() -> None:
    app = service()
    assert error_of(call(app, "GET", "/api/v2/appointments"), 404, "not_found") == "Not Found"
    resp = call(app, "DELETE", "/api/v1/appointments")
    error_of(resp, 405, "method_not_allowed")
    assert resp.headers["allow"] == "POST"


# -- Vapi envelopes ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "field"), [
    ({}, "body.message"),
    ({"message": {}}, "body.message.toolCallList"),
    ({"message": {"toolCallList": []}}, "body.message.toolCallList"),
    ({"message": {"toolCallList": [{"id": f"c{i}", "function": {"name": "checkAvailability"}}
                                   for i in range(21)]}}, "body.message.toolCallList"),
    ({"message": {"toolCallList": [{"function": {"name": "checkAvailability"}}]}}, "body.message.toolCallList.0.id"),
    ({"message": {"toolCallList": [{"id": "c1", "function": {"name": ""}}]}},
     "body.message.toolCallList.0.function.name"),
    ({"message": {"toolCallList": [{"id": "c1", "function": {"name": "x", "arguments": 5}}]}},
     "body.message.toolCallList.0.function.arguments"),
    ([], "body"),
])
def test_a_malformed_vapi_envelope_is_a_422_naming_the_field(body: Any, field: str) -> None:
    resp = call(service(), "POST", "/api/vapi/tools/checkAvailability", json=body)
    assert error_of(resp, 422, "invalid_request").startswith(f"{field}"), resp.text


def test_an_unknown_tool_is_a_404_that_does_not_echo_the_name_whole() -> None:
    name = "<script>" + "x" * 100
    detail = error_of(call(service(), "POST", f"/api/vapi/tools/{name}", json=envelope("x")), 404, "unknown_tool")
    assert "<script>" not in detail and "x" * 41 not in detail and "checkAvailability" in detail


@pytest.mark.parametrize(("name", "arguments", "error"), [
    ("bookClinicAppointment", None, "this endpoint serves 'checkAvailability'"),
    ("checkAvailability", "{not json", "arguments is not valid JSON"),
    ("checkAvailability", "[1, 2]", "arguments must be a JSON object"),
    ("checkAvailability", '{"providerId": 1, "providerId": 2}', "duplicate key 'providerId'"),
    ("checkAvailability", {"providerId": "one", "date": "2030-01-01"}, "invalid argument providerId"),
    ("checkAvailability", {"providerId": 1}, "invalid argument date"),
    ("checkAvailability", "", "invalid argument providerId"),  # an empty string is no arguments at all
])
def test_a_bad_tool_call_in_a_good_envelope_is_a_200_result_with_its_error(name: str, arguments: Any,
                                                                          error: str) -> None:
    """A well-formed envelope always answers 200 with one result per call: the assistant reads the error."""
    resp = call(service(), "POST", "/api/vapi/tools/checkAvailability", json=envelope(name, arguments))
    assert resp.status_code == 200, resp.text
    (result,) = resp.json()["results"]
    assert result["toolCallId"] == "call-1" and result["result"] is None
    assert error in result["error"], result


# -- credentials: refused before the key is looked up, so the (absent) database is never asked ---------------------

@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer    ", "Basic dXNlcjpwYXNz", "Token abc",
                                           "bearerabc"])
def test_a_missing_or_malformed_authorization_is_a_401_with_the_scheme(authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    resp = call(service(logged_in=False), "POST", "/api/v1/appointments", json=booking(), headers=headers)
    assert "Authorization: Bearer <key>" in error_of(resp, 401, "unauthorized")
    assert resp.headers["www-authenticate"] == "Bearer"


def test_two_authorization_headers_are_a_400() -> None:
    headers = [("Authorization", "Bearer a"), ("Authorization", "Bearer b")]
    resp = call(service(logged_in=False), "POST", "/api/v1/appointments", json=booking(), headers=headers)
    assert "exactly one" in error_of(resp, 400, "ambiguous_credentials")


# -- the guard middleware: body size and deadlines --------------------------------------------------------------

def test_a_declared_oversize_body_is_a_413_before_it_is_read() -> None:
    app = service(max_body_bytes=1024)
    resp = call(app, "POST", "/api/v1/appointments", content=b" " * 1025, headers={"content-type": "application/json"})
    assert error_of(resp, 413, "body_too_large") == "request body exceeds 1024 bytes"
    # at the limit the body is read (and here refused for what it holds, not for its size)
    resp = call(app, "POST", "/api/v1/appointments", content=b" " * 1024, headers={"content-type": "application/json"})
    assert resp.status_code == 400


def test_a_chunked_body_is_counted_as_it_arrives() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b" " * 512

    resp = call(service(max_body_bytes=1024), "POST", "/api/v1/appointments", content=chunks(),
                headers={"content-type": "application/json"})
    assert error_of(resp, 413, "body_too_large") == "request body exceeds 1024 bytes"


def test_a_body_that_stalls_past_the_deadline_is_the_clients_408() -> None:
    async def stalls() -> AsyncIterator[bytes]:
        yield b'{"contactId": 1,'
        await asyncio.sleep(5)
        yield b"}"

    resp = call(service(request_timeout_s=0.2), "POST", "/api/v1/appointments", content=stalls(),
                headers={"content-type": "application/json"})
    assert "did not arrive within 0.2 s" in error_of(resp, 408, "request_timeout")
    assert resp.headers["connection"] == "close"


def test_a_handler_past_the_deadline_is_a_504() -> None:
    async def slow_connection() -> AsyncIterator[Any]:
        await asyncio.sleep(5)  # a pool that has no free connection for longer than the deadline
        yield NoDatabase()

    resp = call(service(request_timeout_s=0.2, conn=slow_connection), "POST", "/api/v1/appointments",
                json=booking())
    assert error_of(resp, 504, "deadline_exceeded") == "request took longer than 0.2 s"


def test_a_bug_is_a_json_500_without_a_traceback_and_the_connection_closes(caplog: pytest.LogCaptureFixture) -> None:
    async def broken() -> AsyncIterator[Any]:
        raise RuntimeError("secret internals")
        yield  # pragma: no cover - makes this a generator like the real dependency

    resp = call(service(conn=broken), "POST", "/api/v1/appointments", json=booking())
    assert error_of(resp, 500, "internal_error") == "the service failed on this request; see its log"
    assert "secret internals" not in resp.text and "Traceback" not in resp.text
    assert resp.headers["connection"] == "close"
    # the developer gets the cause, with its traceback, in the log
    assert "RuntimeError: secret internals" in caplog.text and "Traceback" in caplog.text


# -- a database that is not there: a real pool, pointed where nothing listens -----------------------------------

def test_an_unreachable_database_is_a_503_not_a_500() -> None:
    """Readiness says the database is unreachable and an authenticated request (its key lookup needs the database)
    is a 503 the client may retry; liveness still answers."""
    dsn = UNREACHABLE.format(port=free_port())
    app = service(logged_in=False)

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        # min_size=0: the pool opens no connection until a request asks for one
        pool = await asyncpg.create_pool(dsn, min_size=0, max_size=1)
        assert pool is not None
        app.state.pool, app.state.key_cache = pool, KeyCache(60.0)
        try:
            return (await _send(app, "GET", "/healthz"), await _send(app, "GET", "/readyz"),
                    await _send(app, "POST", "/api/v1/appointments", json=booking(),
                                headers={"Authorization": "Bearer some-key"}))
        finally:
            await pool.close()

    healthz, readyz, booked = asyncio.run(scenario())
    assert healthz.status_code == 200
    assert readyz.status_code == 503 and readyz.json() == {"status": "unavailable", "database": "unreachable"}
    assert error_of(booked, 503, "database_unavailable") in ("ConnectionRefusedError", "OSError")
