"""The client layer: profiles load with errors a reader can find, templates keep types, answers read as typed
outcomes, and both reference profiles drive the real reference service."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from pathlib import Path

import httpx
import pytest

from bookbench.pipeline.stack import ServiceProcess
from bookbench.target import pools, profile
from bookbench.target.answers import classify
from bookbench.target.client import AsyncCaller, Target
from bookbench.target.profile import Answer, ProfileError
from tests.conftest import SMALL


def _answers(*rules: dict[str, object]) -> list[Answer]:
    return [Answer.model_validate(r) for r in rules]


def test_rules_read_an_ok_false_a_204_and_an_unknown_answer() -> None:
    rules = _answers({"when": {"status": [200], "json": {"ok": False}}, "outcome": "refused", "reason": "why"},
                     {"when": {"status": [200]}, "outcome": "booked", "id": {"path": "data.ref"}},
                     {"when": {"status": [204], "empty_body": True}, "outcome": "ok"})
    assert classify(rules, 200, {}, b'{"ok": false, "why": "closed"}').describe() == "refused (HTTP 200): closed"
    booked = classify(rules, 200, {}, b'{"ok": true, "data": {"ref": "APT-7"}}')
    assert (booked.kind, booked.appointment_id) == ("booked", "APT-7")
    assert classify(rules, 204, {}, b"").kind == "ok"
    assert classify(rules, 200, {}, b'{"ok": true}').kind == "unclassified"  # booked without a readable id
    assert classify(rules, 418, {}, b"teapot").describe() == "unclassified (HTTP 418): teapot"


def test_a_profile_error_names_the_key_and_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "p.yaml"
    bad.write_text("version: 1\nname: x\noperations:\n  bookClinicAppointment:\n    path: /book/{patient}\n"
                   "    answers: [{when: {status: [201]}, outcome: booked}]\n  teleport: {path: /x, answers: []}\n")
    with pytest.raises(ProfileError) as err:
        profile.load(str(bad))
    text = str(err.value)
    assert "operations.bookClinicAppointment.path" in text and "{patient}" in text
    assert "operations.bookClinicAppointment.answers.0" in text and "needs id" in text
    assert f"{bad}:4:3" in text or f"{bad}:5:" in text
    assert "operations.teleport: Extra inputs are not permitted" in text
    with pytest.raises(ProfileError, match="no such file and not a built-in profile"):
        profile.load("nope")


def test_templates_keep_types_and_quote_path_values() -> None:
    prof = profile.load("reference-rest")
    ts = pools.tenants(prof.pools, SMALL)
    target = Target(prof, ts, pools.credentials(prof.auth.credentials, [t.id for t in ts], SMALL.key_secret))
    start = dt.datetime(2030, 1, 2, 9, 30, tzinfo=dt.UTC)
    req = target.request("bookClinicAppointment", ts[0], target.values(ts[0], random.Random(1), start=start))
    assert req.method == "POST" and req.path == "/api/v1/appointments"
    assert req.headers["Authorization"].startswith("Bearer ") and req.body is not None
    assert b'"start":"2030-01-02T09:30:00+00:00"' in req.body and b'"durationMinutes":30' in req.body
    cancel = target.request("cancelAppointment", ts[0], target.values(ts[0], random.Random(1), appointment="1/../x"))
    assert cancel.path == "/api/v1/appointments/1%2F..%2Fx/cancel"


def test_the_json_schema_is_published() -> None:
    schema = profile.json_schema()
    assert schema["title"] == "bookbench target profile" and "operations" in schema["properties"]


@pytest.mark.parametrize("name", ["reference-rest", "reference-vapi"])
def test_reference_profiles_drive_the_reference_service(api: ServiceProcess, name: str) -> None:
    prof = profile.load(name)
    ts = pools.tenants(prof.pools, SMALL)
    target = Target(prof, ts, pools.credentials(prof.auth.credentials, [t.id for t in ts], SMALL.key_secret))
    rng = random.Random(5)

    async def calls() -> list[str]:
        async with httpx.AsyncClient(base_url=api.base_url, follow_redirects=False) as client:
            caller = AsyncCaller(target, client)
            tenant = ts[0]
            values = target.values(tenant, rng, start=target.slot(rng, (300, 600)))
            kinds = [(await caller.call(op, tenant, values)).kind
                     for op in ("checkAvailability", "lookupUpcomingAppointment")]
            booked = await caller.call("bookClinicAppointment", tenant, values)
            kinds.append(booked.kind)
            kinds.append((await caller.call("bookClinicAppointment", tenant, values)).kind)
            again = {**values, "appointment": booked.appointment_id}
            kinds.append((await caller.call("cancelAppointment", tenant, again)).kind)
            other = ts[1]
            stolen = target.values(other, rng, appointment=booked.appointment_id)
            kinds.append((await caller.call("cancelAppointment", other, stolen)).kind)
            return kinds

    kinds = asyncio.run(calls())
    # the other clinic cannot see the appointment: REST answers 404, Vapi says so in its result
    assert kinds == ["ok", "ok", "booked", "slot_taken", "ok", "not_found"]
