"""A database whose default isolation is REPEATABLE READ: the service still books (it sets READ COMMITTED on its
own connections), preflight names the effective default, and where the function refuses anyway (a pooler that
drops session settings) the answer is a clear 503 naming the setting, a per-call error for Vapi, and the
connection stays usable."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from bookbench.checks.base import CheckTarget
from bookbench.checks.runner import run_suites
from bookbench.db.conn import run_with
from bookbench.pipeline.stack import ServiceProcess, service
from tests.conftest import SMALL, run_async, seeded
from tests.service.test_service_api import auth, body, envelope

pytestmark = pytest.mark.integration

# what the real function does under REPEATABLE READ, made unconditional: the symptom of a pooler that drops the
# service's session settings, which this machine has no pooler to reproduce
ALWAYS_REFUSES = """
CREATE OR REPLACE FUNCTION book_appointment_atomic(p_org_id bigint, p_contact_id bigint, p_provider_id bigint,
    p_start timestamptz, p_duration_minutes int) RETURNS TABLE(status text, appointment_id bigint)
LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'book_appointment_atomic must run under READ COMMITTED, not REPEATABLE READ'
        USING ERRCODE = 'invalid_transaction_state';
END $fn$;
"""


def _repeatable_read_db(new_db: Callable[[], str]) -> str:
    dsn = seeded(new_db())
    name = dsn.rsplit("/", 1)[1]
    run_with(dsn, lambda conn: conn.execute(
        f"ALTER DATABASE {name} SET default_transaction_isolation = 'repeatable read'"))
    return dsn


@pytest.fixture
def rr_service(new_db: Callable[[], str], tmp_path: Path) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(_repeatable_read_db(new_db), log_path=tmp_path / "svc.log")
    proc.start()
    yield proc
    proc.stop()


def test_the_service_books_on_a_repeatable_read_database(rr_service: ServiceProcess) -> None:
    with httpx.Client(base_url=rr_service.base_url, timeout=10) as client:
        made = client.post("/api/v1/appointments", json=body(), headers=auth(1))
        assert made.status_code == 201, made.text
        args = {"contactId": SMALL.contacts_of(1)[1], "providerId": SMALL.providers_of(1)[1],
                "start": body()["start"]}
        vapi = client.post("/api/vapi/tools/bookClinicAppointment", json=envelope("bookClinicAppointment", args),
                           headers=auth(1))
        assert vapi.status_code == 200 and vapi.json()["results"][0]["result"].startswith("Booked"), vapi.text


def test_preflight_names_the_effective_default(rr_service: ServiceProcess) -> None:
    target = CheckTarget(rr_service.base_url, rr_service.dsn, SMALL)
    results = {r.name: r for r in run_async(run_suites(target, ["preflight"]))}
    default = results["database default isolation is READ COMMITTED"]
    assert not default.passed and "'repeatable read'" in default.detail, default.detail
    assert results["refuses REPEATABLE READ"].passed  # the function's own guard still holds


def test_a_refusing_function_is_a_named_503_never_a_500(new_db: Callable[[], str], tmp_path: Path) -> None:
    dsn = seeded(new_db())
    run_with(dsn, lambda conn: conn.execute(ALWAYS_REFUSES))
    with service(dsn, log_path=tmp_path / "svc.log") as proc, \
            httpx.Client(base_url=proc.base_url, timeout=10) as client:
        for _ in range(3):  # the same keep-alive connection every time: it must stay usable
            resp = client.post("/api/v1/appointments", json=body(), headers=auth(1))
            assert resp.status_code == 503, resp.text
            assert resp.headers["content-type"] == "application/json"
            assert resp.json()["error"] == "database_misconfigured"
            assert "READ COMMITTED" in resp.json()["detail"] and "default_transaction_isolation" in resp.json()[
                "detail"]
        vapi = client.post("/api/vapi/tools/bookClinicAppointment", json=envelope("bookClinicAppointment", {
            "contactId": SMALL.contacts_of(1)[0], "providerId": SMALL.providers_of(1)[0], "start": body()["start"]}),
                           headers=auth(1))
        assert vapi.status_code == 200, vapi.text
        assert "default_transaction_isolation" in vapi.json()["results"][0]["error"]
        assert client.get(f"/api/v1/contacts/{SMALL.contacts_of(1)[0]}/appointments/upcoming",
                          headers=auth(1)).status_code == 200
    assert "Traceback" not in (tmp_path / "svc.log").read_text()
