"""The service over real HTTP (uvicorn subprocess) on the embedded database: answers, bad input, tenants."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from bookbench.config.dataset import api_key
from bookbench.pipeline.stack import ServiceProcess
from tests.conftest import SMALL

pytestmark = pytest.mark.integration

_day = itertools.count(300)


def auth(org: int) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key(org)}"}


def future(days: int | None = None, hour: int = 10) -> str:
    base = dt.datetime.now(dt.UTC).replace(hour=hour, minute=0, second=0, microsecond=0)
    return (base + dt.timedelta(days=days if days is not None else next(_day))).isoformat()


def body(org: int = 1, **over: Any) -> dict[str, Any]:
    b = {"contactId": SMALL.contacts_of(org)[0], "providerId": SMALL.providers_of(org)[0], "start": future(),
         "durationMinutes": 30}
    b.update(over)
    return b


@pytest.fixture(scope="module")
def client(api: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.base_url, timeout=10) as c:
        yield c


def test_health_and_openapi(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/appointments" in paths and "/api/vapi/tools/{tool_name}" in paths


def test_book_then_conflict_then_cancel(client: httpx.Client) -> None:
    b = body()
    first = client.post("/api/v1/appointments", json=b, headers=auth(1))
    assert first.status_code == 201, first.text
    appt = first.json()["appointment_id"]
    # an hour from half an hour before: a different start, overlapping the booking
    earlier = (dt.datetime.fromisoformat(b["start"]) - dt.timedelta(minutes=30)).isoformat()
    clash = client.post("/api/v1/appointments", json={**b, "start": earlier, "durationMinutes": 60},
                        headers=auth(1))
    assert clash.status_code == 409 and clash.json()["error"] == "slot_taken"
    assert client.post(f"/api/v1/appointments/{appt}/cancel", headers=auth(1)).status_code == 200
    assert client.post(f"/api/v1/appointments/{appt}/cancel", headers=auth(1)).status_code == 409
    # the slot is free again once cancelled
    assert client.post("/api/v1/appointments", json=b, headers=auth(1)).status_code == 201


def test_upcoming_and_availability(client: httpx.Client) -> None:
    contact = SMALL.contacts_of(1)[1]
    up = client.get(f"/api/v1/contacts/{contact}/appointments/upcoming", headers=auth(1))
    assert up.status_code == 200 and up.json()["contact_id"] == contact
    day = (dt.date.today() + dt.timedelta(days=3)).isoformat()
    av = client.get(f"/api/v1/providers/{SMALL.providers_of(1)[0]}/availability", params={"date": day},
                    headers=auth(1))
    assert av.status_code == 200 and len(av.json()["free_slots"]) <= 16


BAD_BOOKINGS: list[tuple[str, Any, str]] = [
    ("malformed json", b"{not json", "invalid_json"),
    ("not an object", [1, 2], "model_attributes_type"),
    ("wrong type", {"contactId": "abc"}, "contactId"),
    ("missing fields", {}, "providerId"),
    ("past date", {"start": "2020-01-01T10:00:00Z"}, "must be in the future"),
    ("absurd date", {"start": "9999-01-01T10:00:00Z"}, "within 730 days"),
    ("not a date", {"start": "tomorrow at ten"}, "start"),
    ("duration too short", {"durationMinutes": 1}, "durationMinutes"),
    ("duration too long", {"durationMinutes": 100000}, "durationMinutes"),
    ("negative id", {"contactId": -5}, "contactId"),
    ("id beyond bigint", {"providerId": 2**70}, "providerId"),
    ("unknown field", {"sneaky": 1}, "sneaky"),
    ("sql injection in a string id", {"contactId": "1; DROP TABLE appointments; --"}, "contactId"),
    ("null start", {"start": None}, "start"),
    ("true as an id", {"contactId": True}, "contactId"),
    ("a string id", {"providerId": "1"}, "providerId"),
    ("a float id", {"providerId": 1.0}, "providerId"),
    ("date-only start", {"start": "2027-01-01"}, "date and time"),
    ("a unix time as start", {"start": 1893456000}, "date and time"),
    ("start off the 30-minute grid", {"start": future(hour=10)[:14] + "15:00+00:00"}, "30-minute grid"),
    ("start with seconds", {"start": future(hour=10)[:17] + "07+00:00"}, "30-minute grid"),
    ("duration as a string", {"durationMinutes": "30"}, "durationMinutes"),
]


@pytest.mark.parametrize(("case", "payload", "names"), BAD_BOOKINGS, ids=[c[0] for c in BAD_BOOKINGS])
def test_bad_booking_input_is_a_4xx_naming_the_problem(client: httpx.Client, case: str, payload: Any,
                                                       names: str) -> None:
    if isinstance(payload, dict):
        payload = {**body(), **payload} if case not in ("missing fields",) else payload
        resp = client.post("/api/v1/appointments", json=payload, headers=auth(1))
    elif isinstance(payload, bytes):
        resp = client.post("/api/v1/appointments", content=payload, headers={**auth(1), "content-type":
                                                                               "application/json"})
    else:
        resp = client.post("/api/v1/appointments", json=payload, headers=auth(1))
    assert 400 <= resp.status_code < 500, resp.text
    assert names in resp.text


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/contacts/abc/appointments/upcoming"),
    ("GET", "/api/v1/contacts/0/appointments/upcoming"),
    ("GET", "/api/v1/contacts/99999999999999999999999/appointments/upcoming"),
    ("GET", "/api/v1/providers/1/availability?date=not-a-date"),
    ("GET", "/api/v1/providers/1/availability"),
    ("GET", "/api/v1/contacts/1'%20OR%20'1'='1/appointments/upcoming"),
    ("POST", "/api/v1/appointments/999999999/cancel"),
    ("POST", "/api/vapi/tools/dropTables"),
])
def test_bad_paths_are_4xx(client: httpx.Client, method: str, path: str) -> None:
    resp = client.request(method, path, headers=auth(1), json={"message": {"toolCallList": []}})
    assert 400 <= resp.status_code < 500, resp.text


def test_unknown_ids_are_404(client: httpx.Client) -> None:
    assert client.get("/api/v1/contacts/999999/appointments/upcoming", headers=auth(1)).status_code == 404
    assert client.post("/api/v1/appointments", json=body(contactId=999999), headers=auth(1)).status_code == 404


def test_auth_is_required(client: httpx.Client) -> None:
    assert client.post("/api/v1/appointments", json=body()).status_code == 401
    assert client.post("/api/v1/appointments", json=body(), headers={"Authorization": "Bearer nope"}
                       ).status_code == 401
    key = auth(1)["Authorization"].split()[1]
    for wrong in ("Basic " + key, "Bearer", key, "Bearerx " + key):
        assert client.post("/api/v1/appointments", json=body(), headers={"Authorization": wrong}
                           ).status_code == 401, wrong


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer", "bEaReR"])
def test_the_bearer_scheme_is_case_insensitive(client: httpx.Client, scheme: str) -> None:
    contact = SMALL.contacts_of(1)[0]
    resp = client.get(f"/api/v1/contacts/{contact}/appointments/upcoming",
                      headers={"Authorization": f"{scheme} {auth(1)['Authorization'].split()[1]}"})
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("day", ["0", "0001-01-01", "9999-12-31", "20270101", "2027-1-1", "1e5"])
def test_availability_dates_outside_the_calendar_are_422(client: httpx.Client, day: str) -> None:
    resp = client.get(f"/api/v1/providers/{SMALL.providers_of(1)[0]}/availability", params={"date": day},
                      headers=auth(1))
    assert resp.status_code == 422 and "query.date" in resp.text, resp.text


def test_huge_body_is_413(client: httpx.Client) -> None:
    resp = client.post("/api/v1/appointments", content=b"x" * 200_000,
                       headers={**auth(1), "content-type": "application/json"})
    assert resp.status_code == 413

    def chunks() -> Any:
        for _ in range(100):
            yield b" " * 4096

    chunked = client.post("/api/v1/appointments", content=chunks(), headers={**auth(1), "content-type":
                                                                             "application/json"})
    assert chunked.status_code == 413


def test_cross_tenant_matrix(client: httpx.Client) -> None:
    """For every ordered pair of orgs: read, book and cancel with the other org's key never reach its data."""
    owned: dict[int, tuple[int, int]] = {}
    for org in (1, 2, 3):
        made = client.post("/api/v1/appointments", json=body(org), headers=auth(org))
        assert made.status_code == 201
        owned[org] = (SMALL.contacts_of(org)[0], made.json()["appointment_id"])
    for owner, intruder in itertools.permutations((1, 2, 3), 2):
        contact, appt = owned[owner]
        h = auth(intruder)
        read = client.get(f"/api/v1/contacts/{contact}/appointments/upcoming", headers=h)
        cancel = client.post(f"/api/v1/appointments/{appt}/cancel", headers=h)
        book = client.post("/api/v1/appointments", json=body(intruder, contactId=contact), headers=h)
        avail = client.get(f"/api/v1/providers/{SMALL.providers_of(owner)[0]}/availability",
                           params={"date": dt.date.today().isoformat()}, headers=h)
        for resp in (read, cancel, book, avail):
            assert resp.status_code == 404, (owner, intruder, resp.request.url, resp.text)
            # nothing of the owner's records comes back, only "not found"
            assert "scheduled_at" not in resp.text and "free_slots" not in resp.text
    # and the owners still see their own data, untouched
    for org, (contact, _appt) in owned.items():
        mine = client.get(f"/api/v1/contacts/{contact}/appointments/upcoming", headers=auth(org))
        assert mine.status_code == 200


def envelope(name: str, arguments: Any, call_id: str = "call_1") -> dict[str, Any]:
    return {"message": {"type": "tool-calls", "toolCallList": [
        {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}]}}


def test_vapi_tools(client: httpx.Client) -> None:
    args = {"contactId": SMALL.contacts_of(1)[0], "providerId": SMALL.providers_of(1)[1], "start": future()}
    booked = client.post("/api/vapi/tools/bookClinicAppointment", json=envelope("bookClinicAppointment", args),
                         headers=auth(1))
    assert booked.status_code == 200
    result = booked.json()["results"][0]
    assert result["toolCallId"] == "call_1" and result["result"].startswith("Booked")
    # arguments as a JSON string, as some Vapi versions send them; a conflict is an answer, not an error
    import json
    again = client.post("/api/vapi/tools/bookClinicAppointment",
                        json=envelope("bookClinicAppointment", json.dumps(args)), headers=auth(1))
    assert again.status_code == 200 and again.json()["results"][0]["result"].startswith("slot_taken")
    appt = int(str(result["result"]).split()[2])
    for tool, a in [("lookupUpcomingAppointment", {"contactId": args["contactId"]}),
                    ("checkAvailability", {"providerId": args["providerId"], "date": str(args["start"])[:10]}),
                    ("cancelAppointment", {"appointmentId": appt})]:
        resp = client.post(f"/api/vapi/tools/{tool}", json=envelope(tool, a), headers=auth(1))
        assert resp.status_code == 200 and resp.json()["results"][0]["result"], resp.text


@pytest.mark.parametrize(("payload", "status", "text"), [
    ({"message": {}}, 422, "toolCallList"),
    ({"nothing": 1}, 422, "message"),
    (envelope("bookClinicAppointment", {"contactId": "x"}), 200, "invalid argument contactId"),
    (envelope("bookClinicAppointment", "{broken"), 200, "not valid JSON"),
    (envelope("checkAvailability", {}), 200, "names 'checkAvailability'"),
])
def test_vapi_bad_input(client: httpx.Client, payload: Any, status: int, text: str) -> None:
    resp = client.post("/api/vapi/tools/bookClinicAppointment", json=payload, headers=auth(1))
    assert resp.status_code == status and text in resp.text, resp.text
