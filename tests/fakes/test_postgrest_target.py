"""The PostgREST / Supabase-style test target, over HTTP in its own process on a seeded database: login and JWTs,
tenant isolation, the three functions and the table read, and PostgREST's error answers."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bookbench.config.dataset import api_key
from bookbench.fakes.postgrest import DEFAULT_ANON_KEY, DEFAULT_JWT_SECRET, jwt
from bookbench.fakes.postgrest.process import PostgrestProcess
from tests.budget import budget
from tests.conftest import SMALL, fetch

pytestmark = pytest.mark.integration

APIKEY = {"apikey": DEFAULT_ANON_KEY}
# SMALL has 3 orgs: provider and contact n belong to org ((n - 1) % 3) + 1
ORG1_PROVIDERS, ORG1_CONTACTS = (1, 4, 7), (1, 4, 7, 10)
ORG2_PROVIDER, ORG2_CONTACT = 2, 2


@pytest.fixture(scope="module")
def target(small_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgrestProcess]:
    with PostgrestProcess(small_db, log_path=tmp_path_factory.mktemp("pgrst") / "target.log") as proc:
        yield proc


@pytest.fixture(scope="module")
def client(target: PostgrestProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=target.base_url, timeout=10) as c:
        yield c


def login(client: httpx.Client, org_id: int, password: str | None = None) -> httpx.Response:
    body = {"email": f"clinic{org_id}@example.test", "password": password or api_key(org_id, SMALL.key_secret)}
    return client.post("/auth/v1/token", params={"grant_type": "password"}, json=body, headers=APIKEY)


@pytest.fixture(scope="module")
def org1(client: httpx.Client) -> dict[str, str]:
    return {**APIKEY, "Authorization": "Bearer " + login(client, 1).json()["access_token"]}


@pytest.fixture(scope="module")
def org2(client: httpx.Client) -> dict[str, str]:
    return {**APIKEY, "Authorization": "Bearer " + login(client, 2).json()["access_token"]}


def day(offset: int) -> dt.date:
    """A day past the seeded appointments (future_days=120) and within the 730-day horizon."""
    return dt.datetime.now(dt.UTC).date() + dt.timedelta(days=200 + offset)


def at(offset: int, hour: int, minute: int = 0) -> str:
    return dt.datetime.combine(day(offset), dt.time(hour, minute), tzinfo=dt.UTC).isoformat()


def rpc(client: httpx.Client, name: str, headers: dict[str, str], body: Any) -> httpx.Response:
    return client.post(f"/rest/v1/rpc/{name}", json=body, headers=headers)


def book(client: httpx.Client, headers: dict[str, str], contact: int, provider: int, start: str) -> httpx.Response:
    return rpc(client, "book_appointment", headers, {"p_contact_id": contact, "p_provider_id": provider,
                                                     "p_start": start, "p_duration_minutes": 30})


def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert set(body) == {"code", "message", "details", "hint"} and body["code"] == code, body
    return body


def test_login_gives_a_working_token(client: httpx.Client) -> None:
    answer = login(client, 1)
    assert answer.status_code == 200, answer.text
    token = answer.json()
    assert token["token_type"] == "bearer" and token["expires_in"] == 3600
    assert abs(token["expires_at"] - (time.time() + 3600)) < 60
    claims = jwt.decode(token["access_token"], DEFAULT_JWT_SECRET)
    assert claims["org_id"] == 1 and claims["role"] == "authenticated"
    headers = {**APIKEY, "Authorization": f"Bearer {token['access_token']}"}
    slots = rpc(client, "available_slots", headers, {"p_provider_id": 1, "p_day": day(0).isoformat()})
    assert slots.status_code == 200 and isinstance(slots.json(), list)


def test_login_refuses_a_wrong_password_or_a_missing_apikey(client: httpx.Client) -> None:
    wrong = login(client, 1, password=api_key(2, SMALL.key_secret))
    assert wrong.status_code == 400 and wrong.json()["error_code"] == "invalid_credentials"
    assert login(client, 99).status_code == 400  # no such organization
    body = {"email": "clinic1@example.test", "password": api_key(1, SMALL.key_secret)}
    assert client.post("/auth/v1/token", params={"grant_type": "password"}, json=body).status_code == 401
    assert client.post("/auth/v1/token", json=body, headers=APIKEY).status_code == 400  # no grant_type


def test_apikey_is_required_on_every_rest_request(client: httpx.Client, org1: dict[str, str]) -> None:
    bearer = {"Authorization": org1["Authorization"]}
    missing = client.get("/rest/v1/appointments", headers=bearer)
    assert missing.status_code == 401 and missing.json()["message"] == "No API key found in request"
    wrong = client.get("/rest/v1/appointments", headers={**bearer, "apikey": "nope"})
    assert wrong.status_code == 401 and wrong.json()["message"] == "Invalid API key"
    # Supabase's gateway also takes it as a query parameter, and it is not read as a filter
    assert client.get("/rest/v1/appointments?limit=1&apikey=" + DEFAULT_ANON_KEY, headers=bearer).status_code == 200


def test_bad_missing_or_expired_jwt_is_401(client: httpx.Client) -> None:
    claims = {"org_id": 1, "role": "authenticated", "exp": int(time.time()) + 600}
    forged = jwt.encode(claims, "another-secret")
    body = error(client.get("/rest/v1/appointments", headers={**APIKEY, "Authorization": f"Bearer {forged}"}),
                 401, "PGRST301")
    assert body["message"] == "JWT cryptographic operation failed"
    garbage = client.get("/rest/v1/appointments", headers={**APIKEY, "Authorization": "Bearer abc"})
    assert error(garbage, 401, "PGRST301")["message"] == "Expected 3 parts in JWT; got 1"
    assert garbage.headers["www-authenticate"].startswith('Bearer error="invalid_token"')
    expired = jwt.encode({**claims, "exp": int(time.time()) - 5}, DEFAULT_JWT_SECRET)
    late = client.get("/rest/v1/appointments", headers={**APIKEY, "Authorization": f"Bearer {expired}"})
    assert error(late, 401, "PGRST303")["message"] == "JWT expired"
    assert error(client.get("/rest/v1/appointments", headers=APIKEY), 401, "PGRST302")["message"] == (
        "Anonymous access is disabled")
    anon = jwt.encode({**claims, "role": "anon"}, DEFAULT_JWT_SECRET)
    refused = rpc(client, "available_slots", {**APIKEY, "Authorization": f"Bearer {anon}"}, {})
    assert error(refused, 403, "42501")["message"] == "permission denied for function available_slots"


def test_availability_lists_the_days_slots(client: httpx.Client, org1: dict[str, str]) -> None:
    slots = rpc(client, "available_slots", org1, {"p_provider_id": 1, "p_day": day(1).isoformat()})
    assert slots.status_code == 200, slots.text
    assert len(slots.json()) == 16  # 09:00-17:00 UTC in 30-minute slots, nothing booked that far out
    assert slots.json()[0] == {"slot_start": at(1, 9), "slot_end": at(1, 9, 30)}
    assert slots.headers["content-range"] == "0-15/*"
    assert book(client, org1, 1, 1, at(1, 10)).status_code == 200
    after = [s["slot_start"] for s in rpc(client, "available_slots", org1,
                                          {"p_provider_id": 1, "p_day": day(1).isoformat()}).json()]
    assert len(after) == 15 and at(1, 10) not in after
    far = rpc(client, "available_slots", org1, {"p_provider_id": 1, "p_day": "2100-01-01"})
    assert far.json() == []  # past the booking horizon: nothing offered that could not be booked


def test_availability_of_another_orgs_provider_is_a_raise(client: httpx.Client, org1: dict[str, str]) -> None:
    other = rpc(client, "available_slots", org1, {"p_provider_id": ORG2_PROVIDER, "p_day": day(0).isoformat()})
    assert error(other, 400, "P0001")["message"] == "provider not found"
    bad_day = rpc(client, "available_slots", org1, {"p_provider_id": 1, "p_day": "tomorrow"})
    assert error(bad_day, 400, "22007")["message"] == 'invalid input syntax for type date: "tomorrow"'
    bad_id = rpc(client, "available_slots", org1, {"p_provider_id": "x", "p_day": day(0).isoformat()})
    assert error(bad_id, 400, "22P02")["message"] == 'invalid input syntax for type bigint: "x"'


def test_book_answers_one_object_and_queues_notifications(client: httpx.Client, org1: dict[str, str],
                                                          small_db: str) -> None:
    booked = book(client, org1, 4, 4, at(2, 11))
    assert booked.status_code == 200, booked.text
    body = booked.json()
    assert set(body) == {"booking_ref", "status", "scheduled_at"}
    assert re.fullmatch(r"APT-\d{9}", body["booking_ref"]) and body["status"] == "booked"
    assert body["scheduled_at"] == at(2, 11)
    ident = int(body["booking_ref"][4:])
    rows = fetch(small_db, "SELECT channel, kind, dedup_key FROM notification_outbox WHERE appointment_id = $1", ident)
    assert sorted((r["channel"], r["kind"], r["dedup_key"]) for r in rows) == [
        ("calendar", "insert", f"bb{ident}"), ("sms", "confirm", f"sms-confirm-{ident}")]


def test_book_refusals_are_raises(client: httpx.Client, org1: dict[str, str]) -> None:
    assert error(book(client, org1, ORG2_CONTACT, 1, at(3, 9)), 400, "P0001")["message"] == "contact not found"
    assert error(book(client, org1, 1, ORG2_PROVIDER, at(3, 9)), 400, "P0001")["message"] == "provider not found"
    assert error(book(client, org1, 1, 1, "2020-01-01T09:00:00+00:00"), 400, "P0001")["message"] == "invalid booking"
    assert error(book(client, org1, 1, 1, at(3, 9, 10)), 400, "P0001")["message"] == "invalid booking"  # off grid
    wrong = rpc(client, "book_appointment", org1, {"p_contact_id": 1, "p_provider_id": 1, "p_start": at(3, 9),
                                                   "p_duration_minutes": True})
    assert error(wrong, 400, "22P02")["message"] == 'invalid input syntax for type integer: "true"'


def test_exactly_one_of_ten_concurrent_same_slot_bookings_wins(target: PostgrestProcess, org1: dict[str, str],
                                                               small_db: str) -> None:
    start = at(4, 14)

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=target.base_url, timeout=15) as c:
            return await asyncio.gather(*(
                c.post("/rest/v1/rpc/book_appointment", headers=org1, json={
                    "p_contact_id": ORG1_CONTACTS[i % 4], "p_provider_id": 7, "p_start": start,
                    "p_duration_minutes": 30}) for i in range(10)))

    answers = asyncio.run(race())
    assert sorted(r.status_code for r in answers) == [200] + [409] * 9
    for lost in (r for r in answers if r.status_code == 409):
        body = error(lost, 409, "23505")
        assert body["message"] == 'duplicate key value violates unique constraint "appointments_no_overlap"'
        assert body["details"].startswith("Key (provider_id, scheduled_at)=(7, ") and body["hint"] is None
    held = fetch(small_db, "SELECT count(*) AS n FROM appointments WHERE provider_id = 7 AND scheduled_at = $1 "
                           "AND status <> 'cancelled'", dt.datetime.fromisoformat(start))
    assert held[0]["n"] == 1


def test_cancel_is_204_without_body_then_a_raise(client: httpx.Client, org1: dict[str, str], small_db: str) -> None:
    ref = book(client, org1, 7, 1, at(5, 15)).json()["booking_ref"]
    done = rpc(client, "cancel_appointment", org1, {"p_booking_ref": ref})
    assert done.status_code == 204 and done.content == b""
    ident = int(ref[4:])
    kinds = fetch(small_db, "SELECT channel, kind FROM notification_outbox WHERE appointment_id = $1 "
                            "AND kind IN ('cancel', 'delete')", ident)
    assert sorted((r["channel"], r["kind"]) for r in kinds) == [("calendar", "delete"), ("sms", "cancel")]
    again = rpc(client, "cancel_appointment", org1, {"p_booking_ref": ref})
    assert error(again, 400, "P0001")["message"] == "appointment already cancelled"
    for unknown in ("APT-999999999", "APT-1", "nonsense", 12):
        missing = rpc(client, "cancel_appointment", org1, {"p_booking_ref": unknown})
        assert error(missing, 400, "P0001")["message"] == "appointment not found"


def test_upcoming_read_with_the_filter_grammar(client: httpx.Client, org1: dict[str, str]) -> None:
    contact = 10
    later = book(client, org1, contact, 4, at(7, 12)).json()["booking_ref"]
    sooner = book(client, org1, contact, 1, at(6, 16)).json()["booking_ref"]
    since = dt.datetime.combine(day(6), dt.time(0), tzinfo=dt.UTC).isoformat()
    params = {"select": "booking_ref,provider_id,scheduled_at,duration_minutes", "contact_id": f"eq.{contact}",
              "status": "eq.booked", "scheduled_at": f"gte.{since}", "order": "scheduled_at.asc", "limit": "1"}
    read = client.get("/rest/v1/appointments", params=params, headers=org1)
    assert read.status_code == 200, read.text
    assert read.json() == [{"booking_ref": sooner, "provider_id": 1, "scheduled_at": at(6, 16),
                            "duration_minutes": 30}]
    desc = client.get("/rest/v1/appointments", params={**params, "order": "scheduled_at.desc"}, headers=org1)
    assert desc.json()[0]["booking_ref"] == later
    one = client.get("/rest/v1/appointments", params={"booking_ref": f"eq.{later}", "select": "status"},
                     headers={**org1, "Accept": "application/vnd.pgrst.object+json"})
    assert one.json() == {"status": "booked"}
    none = client.get("/rest/v1/appointments", params={"booking_ref": "eq.APT-000000000"},
                      headers={**org1, "Accept": "application/vnd.pgrst.object+json"})
    assert error(none, 406, "PGRST116")["details"] == "The result contains 0 rows"
    empty = client.get("/rest/v1/appointments", params={**params, "scheduled_at": "gt.2100-01-01T00:00:00Z"},
                       headers=org1)
    assert empty.status_code == 200 and empty.json() == []


def test_tenant_isolation(client: httpx.Client, org1: dict[str, str], org2: dict[str, str], small_db: str) -> None:
    ref = book(client, org1, 1, 7, at(8, 9)).json()["booking_ref"]
    seen = client.get("/rest/v1/appointments", params={"booking_ref": f"eq.{ref}"}, headers=org2)
    assert seen.status_code == 200 and seen.json() == []
    theirs = client.get("/rest/v1/appointments", params={"contact_id": "eq.1", "limit": "5"}, headers=org2)
    assert theirs.json() == []
    assert len(client.get("/rest/v1/appointments", params={"contact_id": "eq.1", "limit": "5"},
                          headers=org1).json()) > 0
    stolen = rpc(client, "cancel_appointment", org2, {"p_booking_ref": ref})
    assert error(stolen, 400, "P0001")["message"] == "appointment not found"
    assert fetch(small_db, "SELECT status FROM appointments WHERE id = $1", int(ref[4:]))[0]["status"] == "booked"
    assert error(book(client, org2, 1, ORG2_PROVIDER, at(8, 9)), 400, "P0001")["message"] == "contact not found"


def test_unknown_function_and_table_are_404(client: httpx.Client, org1: dict[str, str]) -> None:
    body = error(rpc(client, "nope", org1, {}), 404, "PGRST202")
    assert body["message"] == "Could not find the function public.nope without parameters in the schema cache"
    assert body["details"] == ("Searched for the function public.nope without parameters or with a single unnamed "
                               "json/jsonb parameter, but no matches were found in the schema cache.")
    wrong_args = error(rpc(client, "book_appointment", org1, {"contact": 1}), 404, "PGRST202")
    assert wrong_args["message"] == "Could not find the function public.book_appointment(contact) in the schema cache"
    assert wrong_args["hint"] == ("Perhaps you meant to call the function public.book_appointment(p_contact_id, "
                                  "p_duration_minutes, p_provider_id, p_start)")
    table = error(client.get("/rest/v1/appointment", headers=org1), 404, "PGRST205")
    assert table["message"] == "Could not find the table 'public.appointment' in the schema cache"
    assert table["hint"] == "Perhaps you meant the table 'public.appointments'"


def test_bad_filters_are_400(client: httpx.Client, org1: dict[str, str]) -> None:
    like = error(client.get("/rest/v1/appointments?status=like.booked", headers=org1), 400, "PGRST100")
    assert like["message"] == '"failed to parse filter (like.booked)" (line 1, column 1)'
    assert like["details"] == 'unexpected "l" expecting "not" or operator (eq, gt, ...)'
    error(client.get("/rest/v1/appointments?order=scheduled_at.up", headers=org1), 400, "PGRST100")
    error(client.get("/rest/v1/appointments?limit=ten", headers=org1), 400, "PGRST100")
    error(client.get("/rest/v1/appointments?select=booking_ref,(x)", headers=org1), 400, "PGRST100")
    column = error(client.get("/rest/v1/appointments?org_id=eq.2", headers=org1), 400, "42703")
    assert column["message"] == "column appointments.org_id does not exist"
    error(client.get("/rest/v1/appointments?contact_id=eq.abc", headers=org1), 400, "22P02")
    error(client.delete("/rest/v1/appointments?contact_id=eq.1", headers=org1), 403, "42501")


def test_malformed_json_and_hostile_bodies_are_4xx(client: httpx.Client, org1: dict[str, str]) -> None:
    broken = client.post("/rest/v1/rpc/book_appointment", content=b'{"p_contact_id": 1,',
                         headers={**org1, "Content-Type": "application/json"})
    assert error(broken, 400, "PGRST102")["message"] == "Empty or invalid json"
    hostile: list[bytes] = [b"[1, 2]", b"null", b'"x"', b'{"p_provider_id": NaN, "p_day": "2030-01-01"}',
                            b"\xff\xfe", b'{"p_provider_id": 99999999999999999999, "p_day": "2030-01-01"}',
                            b'{"p_provider_id": 1.5, "p_day": "2030-13-45"}',
                            b'{"p_provider_id": {"a": 1}, "p_day": ["x"]}']
    for raw in hostile:
        for name in ("available_slots", "book_appointment", "cancel_appointment"):
            answer = client.post(f"/rest/v1/rpc/{name}", content=raw, headers=org1)
            assert 400 <= answer.status_code < 500, (name, raw, answer.text)
    starts = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00", "not a time", 17, None]
    for start in starts:
        answer = book(client, org1, 1, 1, start)  # type: ignore[arg-type]
        assert 400 <= answer.status_code < 500, (start, answer.text)


def test_contacts_and_providers_are_read_only_tables_scoped_to_the_tokens_org(
        client: httpx.Client, org1: dict[str, str], org2: dict[str, str]) -> None:
    everyone = {"select": "id", "order": "id.asc"}
    for table, of in (("contacts", SMALL.contacts_of), ("providers", SMALL.providers_of)):
        for org, headers in ((1, org1), (2, org2)):
            read = client.get(f"/rest/v1/{table}", params=everyone, headers=headers)
            assert read.status_code == 200, read.text
            assert [row["id"] for row in read.json()] == list(of(org))
        # another org's row is not there for this token, whatever the filter says
        assert client.get(f"/rest/v1/{table}", params={"id": "eq.2"}, headers=org1).json() == []
        error(client.post(f"/rest/v1/{table}", json={"name": "x"}, headers=org1), 403, "42501")
        error(client.get(f"/rest/v1/{table}", params={"org_id": "eq.2"}, headers=org1), 400, "42703")
    named = client.get("/rest/v1/providers", params={"select": "id,name", "order": "id.desc", "limit": "2"},
                       headers=org1).json()
    assert [row["id"] for row in named] == [7, 4] and all(isinstance(row["name"], str) for row in named)
    first = client.get("/rest/v1/contacts", params={"id": "eq.4", "select": "name"},
                       headers={**org1, "Accept": "application/vnd.pgrst.object+json"})
    assert first.status_code == 200 and set(first.json()) == {"name"}
    assert client.get("/rest/v1/contacts", params={"limit": "1"}, headers=APIKEY).status_code == 401


def test_root_serves_swagger_2(client: httpx.Client) -> None:
    doc = client.get("/rest/v1/", headers=APIKEY)
    assert doc.status_code == 200
    spec = doc.json()
    assert spec["swagger"] == "2.0" and spec["basePath"] == "/rest/v1"
    args = spec["paths"]["/rpc/book_appointment"]["post"]["parameters"][0]["schema"]["properties"]
    assert list(args) == ["p_contact_id", "p_provider_id", "p_start", "p_duration_minutes"]
    assert "/appointments" in spec["paths"] and "/rpc/cancel_appointment" in spec["paths"]
    assert set(spec["definitions"]["contacts"]["properties"]) == {"id", "name"}
    assert set(spec["definitions"]["providers"]["properties"]) == {"id", "name"}
    assert "/contacts" in spec["paths"] and "/providers" in spec["paths"]


def test_an_expired_token_is_refused_and_a_fresh_login_works(small_db: str, tmp_path: Any) -> None:
    with PostgrestProcess(small_db, token_ttl_s=1, log_path=tmp_path / "short.log") as proc, httpx.Client(
            base_url=proc.base_url, timeout=10) as c:
        token = login(c, 3).json()
        headers = {**APIKEY, "Authorization": f"Bearer {token['access_token']}"}
        read = {"contact_id": "eq.3", "limit": "1"}
        assert c.get("/rest/v1/appointments", params=read, headers=headers).status_code == 200
        time.sleep(max(0.0, token["expires_at"] - time.time()) + 0.2)
        late = c.get("/rest/v1/appointments", params=read, headers=headers)
        assert error(late, 401, "PGRST303")["message"] == "JWT expired"
        fresh = login(c, 3).json()["access_token"]
        again = c.get("/rest/v1/appointments", params=read, headers={**APIKEY, "Authorization": f"Bearer {fresh}"})
        assert again.status_code == 200


@pytest.mark.netns  # names a non-loopback address: runs inside a loopback-only namespace
def test_cli_refuses_a_non_loopback_host() -> None:
    done = subprocess.run([sys.executable, "-m", "bookbench.fakes.postgrest", "--dsn", "postgresql://x/y",
                           "--port", "1", "--host", "0.0.0.0"], capture_output=True, text=True, timeout=budget(30))
    assert done.returncode == 2 and "loopback" in done.stderr
