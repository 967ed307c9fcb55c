"""Issue 21, the service's side: revoked keys refused at once (4), a stalled body is a 408 and a stalled header is
closed (6), a cancel after a manual restore (8), and the smaller answers of 10. Real service, real database.

Timing bounds are generous on purpose (a busy 2-core machine): each names the budget the service is configured
with and allows several times that before calling it a failure.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import socket
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from bookbench.config.dataset import api_key
from bookbench.pipeline.stack import ServiceProcess
from target_service.auth import KeyCache
from tests.budget import budget
from tests.conftest import SMALL, fetch, run_sql, running_service, seeded
from tests.service.test_service_api import auth, body, envelope

pytestmark = pytest.mark.integration

REQUEST_TIMEOUT_S = 3
HEADER_TIMEOUT_S = 2
# how long a revocation may take to reach the service: a notification arrives in milliseconds; this only absorbs
# a loaded machine, and is far below the old 60 s cache lifetime
REVOCATION_BOUND_S = 5.0


@pytest.fixture(scope="module")
def dsn(new_db: Callable[[], str]) -> str:
    return seeded(new_db())


@pytest.fixture(scope="module")
def svc(dsn: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with running_service(dsn, tmp_path_factory.mktemp("svc21"), {
            "BOOKBENCH_REQUEST_TIMEOUT_S": str(REQUEST_TIMEOUT_S),
            "BOOKBENCH_HEADER_TIMEOUT_S": str(HEADER_TIMEOUT_S)}) as proc:
        yield proc


@pytest.fixture(scope="module")
def client(svc: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=svc.base_url, timeout=30) as c:
        yield c


# ---- item 4: a changed or deleted key stops working at once -------------------------------------------------------

def _new_org(dsn: str, key: str) -> tuple[int, int]:
    """A tenant of its own (org, contact), so that revoking it touches no other test."""
    async def work(conn):  # type: ignore[no-untyped-def]
        org = await conn.fetchval("INSERT INTO organizations (name, api_key_hash) VALUES ('Revoked', $1) "
                                  "RETURNING id", hashlib.sha256(key.encode()).hexdigest())
        contact = await conn.fetchval("INSERT INTO contacts (org_id, name, phone) VALUES ($1, 'P', $2) "
                                      "RETURNING id", org, f"+1999{org:09d}")
        return org, contact

    return run_sql(dsn, work)  # type: ignore[no-any-return]


def _wait_for_listener(client: httpx.Client) -> None:
    deadline = time.monotonic() + budget(30)
    while client.get("/stats").json().get("auth_cache") != "listening":
        assert time.monotonic() < deadline, "the service's key-change listener never connected"
        time.sleep(0.1)


def _refused_within(client: httpx.Client, path: str, key: str, bound_s: float,
                    meanwhile: frozenset[int] = frozenset({200})) -> float:
    """Seconds until `key` is refused (401) on `path`; fails past `bound_s`. Until then, an answer in `meanwhile`."""
    started = time.monotonic()
    while True:
        status = client.get(path, headers={"Authorization": f"Bearer {key}"}).status_code
        waited = time.monotonic() - started
        if status == 401:
            return waited
        assert status in meanwhile, status
        assert waited < bound_s, f"the revoked key still worked after {waited:.1f} s"
        time.sleep(0.05)


@pytest.mark.parametrize("change", ["rotate", "delete"])
def test_a_revoked_key_is_refused_at_once(client: httpx.Client, dsn: str, change: str) -> None:
    _wait_for_listener(client)
    key = f"bk_revoke_{change}_{time.time_ns()}"
    org, contact = _new_org(dsn, key)
    path = f"/api/v1/contacts/{contact}/appointments/upcoming"
    for _ in range(3):  # now cached
        assert client.get(path, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    if change == "rotate":
        fetch(dsn, "UPDATE organizations SET api_key_hash = $2 WHERE id = $1", org, "0" * 64)
    else:
        fetch(dsn, "DELETE FROM contacts WHERE org_id = $1", org)
        fetch(dsn, "DELETE FROM organizations WHERE id = $1", org)
    # while the notification is on its way the key may still be cached, and its contact is already gone: a 404 then
    # is the right answer (seen on a busy machine), a 200 is not
    meanwhile = frozenset({200}) if change == "rotate" else frozenset({404})
    _refused_within(client, path, key, budget(REVOCATION_BOUND_S), meanwhile)


def test_a_lost_listener_never_lets_a_revoked_key_through(client: httpx.Client, dsn: str) -> None:
    """The listener's connection killed: until it is back, nothing is served from the cache, so a revocation in that
    window is still seen at once."""
    _wait_for_listener(client)
    key = f"bk_revoke_lost_{time.time_ns()}"
    org, contact = _new_org(dsn, key)
    path = f"/api/v1/contacts/{contact}/appointments/upcoming"
    assert client.get(path, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    killed = fetch(dsn, "SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity "
                        "WHERE application_name = 'bookbench-service-auth' AND datname = current_database()")
    assert killed and all(r["ok"] for r in killed)
    fetch(dsn, "UPDATE organizations SET api_key_hash = $2 WHERE id = $1", org, "1" * 64)
    _refused_within(client, path, key, budget(REVOCATION_BOUND_S))
    _wait_for_listener(client)  # and it reconnects


# ---- item 6: a stalled body is a 408, a stalled header is closed ----------------------------------------------------

def _raw(svc: ServiceProcess, data: bytes, wait_s: float) -> tuple[bytes, bool, float]:
    """Send `data` and read until the server closes or `wait_s` passes: (answer, closed, seconds)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", svc.port), timeout=wait_s) as s:
        s.sendall(data)
        answer = b""
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                return answer, False, time.monotonic() - started
            if not chunk:
                return answer, True, time.monotonic() - started
            answer += chunk


@pytest.mark.parametrize("with_key", [True, False])
def test_a_stalled_body_is_a_408_and_the_connection_closes(svc: ServiceProcess, with_key: bool) -> None:
    head = (b"POST /api/v1/appointments HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 500\r\n")
    if with_key:
        head += f"Authorization: Bearer {api_key(1)}\r\n".encode()
    answer, closed, took = _raw(svc, head + b"\r\n" + b'{"contactId": 1', wait_s=6 * REQUEST_TIMEOUT_S)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b'"error":"request_timeout"' in answer and b"connection: close" in answer.lower()
    assert closed, f"the connection stayed open {took:.1f} s after the 408"


async def _dribble(port: int, head: bytes, byte_every_s: float, give_up_s: float) -> tuple[bytes, float | None]:
    """Send `head` one byte at a time; (what came back, seconds until the server closed, or None)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    answer = b""
    try:
        for i in range(10**6):
            if time.monotonic() - started > give_up_s:
                return answer, None
            try:
                writer.write(head[i % len(head):i % len(head) + 1])
                await writer.drain()
            except ConnectionError:
                return answer, time.monotonic() - started
            try:
                chunk = await asyncio.wait_for(reader.read(65536), byte_every_s)
            except TimeoutError:
                continue
            except ConnectionError:
                return answer, time.monotonic() - started
            answer += chunk
            if not chunk:
                return answer, time.monotonic() - started
        return answer, None
    finally:
        writer.close()


def test_connections_that_dribble_their_header_are_closed(svc: ServiceProcess, client: httpx.Client) -> None:
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 10_000

    async def many() -> list[tuple[bytes, float | None]]:
        return await asyncio.gather(*(_dribble(svc.port, head, 0.5, 10 * HEADER_TIMEOUT_S) for _ in range(50)))

    results = asyncio.run(many())
    still_open = [r for r in results if r[1] is None]
    assert not still_open, f"{len(still_open)} of 50 dribbling connections still open after {10 * HEADER_TIMEOUT_S} s"
    assert all(a.startswith(b"HTTP/1.1 408") for a, _ in results), {a[:40] for a, _ in results}
    assert client.get("/healthz").status_code == 200  # and the service still answers


def test_a_silent_connection_is_closed_too(svc: ServiceProcess) -> None:
    answer, closed, took = _raw(svc, b"", wait_s=10 * HEADER_TIMEOUT_S)
    assert closed and answer == b"", (answer, took)


# ---- item 8: a cancel after a manual restore ------------------------------------------------------------------------

def _restore(dsn: str, appt: int) -> None:
    fetch(dsn, "UPDATE appointments SET status = 'booked', cancelled_at = NULL WHERE id = $1", appt)


def test_rest_cancel_after_a_manual_restore(client: httpx.Client, dsn: str) -> None:
    appt = client.post("/api/v1/appointments", json=body(), headers=auth(1)).json()["appointment_id"]
    for _ in range(3):
        resp = client.post(f"/api/v1/appointments/{appt}/cancel", headers=auth(1))
        assert resp.status_code == 200, resp.text
        _restore(dsn, appt)
    rows = fetch(dsn, "SELECT channel, kind, dedup_key FROM notification_outbox WHERE appointment_id = $1 "
                      "ORDER BY id", appt)
    keys = [r["dedup_key"] for r in rows]
    assert len(keys) == len(set(keys)) == 2 + 3 * 2  # one event, one key
    # the first of each keeps the key the providers and the analysis know
    assert {f"bb{appt}", f"sms-confirm-{appt}", f"sms-cancel-{appt}", f"bb{appt}-delete"} <= set(keys)
    assert sum(r["kind"] == "delete" for r in rows) == 3
    # each delete still names the one calendar event
    assert {p["payload"] for p in fetch(dsn, "SELECT payload::text FROM notification_outbox "
                                             "WHERE appointment_id = $1 AND kind = 'delete'", appt)} \
        == {f'{{"event_id": "bb{appt}", "calendar_id": "provider-{SMALL.providers_of(1)[0]}"}}'}


def test_vapi_cancel_after_a_manual_restore(client: httpx.Client, dsn: str) -> None:
    appt = client.post("/api/v1/appointments", json=body(), headers=auth(1)).json()["appointment_id"]
    for _ in range(2):
        resp = client.post("/api/vapi/tools/cancelAppointment", headers=auth(1),
                           json=envelope("cancelAppointment", {"appointmentId": appt}))
        assert resp.status_code == 200, resp.text
        assert resp.json()["results"][0]["result"] == f"Cancelled appointment {appt}."
        _restore(dsn, appt)


# ---- item 10: the smaller ones ---------------------------------------------------------------------------------------

def test_every_slot_listed_on_the_last_day_can_be_booked(client: httpx.Client) -> None:
    last_day = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=730)
    provider = SMALL.providers_of(2)[1]
    resp = client.get(f"/api/v1/providers/{provider}/availability", params={"date": last_day.isoformat()},
                      headers=auth(2))
    assert resp.status_code == 200, resp.text
    slots = resp.json()["free_slots"]
    if not slots:
        return  # (today's time of day puts the whole last day past the horizon: nothing listed, nothing refused)
    booked = client.post("/api/v1/appointments", headers=auth(2), json={
        "contactId": SMALL.contacts_of(2)[0], "providerId": provider, "start": slots[-1]["start"]})
    assert booked.status_code == 201, booked.text


def _shape(resp: httpx.Response, status: int, error: str) -> dict[str, str]:
    assert resp.status_code == status, resp.text
    got = resp.json()
    assert set(got) >= {"error", "detail"} and got["error"] == error, got
    return got  # type: ignore[no-any-return]


def test_http_errors_have_the_documented_shape(client: httpx.Client) -> None:
    unauthorized = client.post("/api/v1/appointments", json=body())
    _shape(unauthorized, 401, "unauthorized")
    assert unauthorized.headers["www-authenticate"] == "Bearer"
    _shape(client.get("/no/such/route"), 404, "not_found")
    not_allowed = client.get("/api/v1/appointments", headers=auth(1))
    _shape(not_allowed, 405, "method_not_allowed")
    assert "POST" in not_allowed.headers["allow"]

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b" " * 4096

    _shape(client.post("/api/v1/appointments", content=chunks(), headers={**auth(1), "content-type":
                                                                         "application/json"}), 413, "body_too_large")


def test_an_unknown_tool_is_a_404_that_does_not_echo_the_name(client: httpx.Client) -> None:
    name = "x" * 5000 + "<script>"
    got = _shape(client.post(f"/api/vapi/tools/{name}", headers=auth(1),
                             json=envelope("checkAvailability", {})), 404, "unknown_tool")
    assert len(got["detail"]) < 300 and "<script>" not in got["detail"], got
    assert "checkAvailability" in got["detail"]  # it names what is known


@pytest.mark.parametrize("raw", [
    b'{"contactId": 1, "contactId": 2, "providerId": 1, "start": "2030-01-01T10:00:00Z"}',
    b'{"message": {"toolCallList": []}, "message": {"toolCallList": []}}',
])
def test_duplicated_json_keys_are_refused(client: httpx.Client, raw: bytes) -> None:
    got = _shape(client.post("/api/v1/appointments", content=raw,
                             headers={**auth(1), "content-type": "application/json"}), 400, "invalid_json")
    assert "duplicate" in got["detail"]


def test_duplicated_keys_in_vapi_arguments_are_an_argument_error(client: httpx.Client) -> None:
    resp = client.post("/api/vapi/tools/cancelAppointment", headers=auth(1), json=envelope(
        "cancelAppointment", '{"appointmentId": 999999999, "appointmentId": 1}'))
    assert resp.status_code == 200, resp.text
    assert "duplicate" in (resp.json()["results"][0]["error"] or "")


def test_a_start_finer_than_microseconds_is_refused(client: httpx.Client, dsn: str) -> None:
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=400)).strftime("%Y-%m-%dT10:00:00.000000001Z")
    before = fetch(dsn, "SELECT count(*) AS n FROM appointments")[0]["n"]
    resp = client.post("/api/v1/appointments", json=body(start=start), headers=auth(1))
    got = _shape(resp, 422, "invalid_request")
    assert "start" in got["detail"]
    assert fetch(dsn, "SELECT count(*) AS n FROM appointments")[0]["n"] == before


def test_two_authorization_headers_are_refused(svc: ServiceProcess) -> None:
    request = (f"GET /api/v1/contacts/{SMALL.contacts_of(1)[0]}/appointments/upcoming HTTP/1.1\r\n"
               f"Host: 127.0.0.1\r\nAuthorization: Bearer {api_key(1)}\r\nAuthorization: Bearer {api_key(2)}\r\n"
               "Connection: close\r\n\r\n").encode()
    answer, _, _ = _raw(svc, request, wait_s=30)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:300]
    assert b'"error":"ambiguous_credentials"' in answer


def test_a_lookup_that_raced_a_revocation_is_not_cached() -> None:
    """The one window LISTEN alone leaves: a lookup that read the old key before the change committed, and stores
    it after the notification emptied the cache."""
    cache = KeyCache(60)
    cache.set_live(True)
    started = cache.generation
    cache.invalidate()  # the notification arrives while the lookup is in flight
    cache.put("hash", 1, started)
    assert cache.get("hash") is None
    cache.put("hash", 1, cache.generation)
    assert cache.get("hash") == 1
    cache.set_live(False)  # listener lost: nothing is served from the cache
    assert cache.get("hash") is None
    cache.put("hash", 1, cache.generation)
    assert cache.get("hash") is None
