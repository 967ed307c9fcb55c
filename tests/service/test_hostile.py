"""Hostile input against the real service: the fixed corpus of inputs that once gave a 500, then thousands of
generated requests per endpoint. Never a 5xx, never a traceback, and the database changes only by what was
accepted."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import unquote

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings

from bookbench.checks.hostile import (
    fuzz,
    log_result,
    problem,
    send,
    snapshot,
    unexpected_changes,
)
from bookbench.checks.hostile_inputs import ENDPOINTS, Layout, Probe, corpus, plausible_id, strategy
from bookbench.pipeline.stack import ServiceProcess
from tests.conftest import SMALL, run_sql, seeded

pytestmark = pytest.mark.integration

# at least 2,000 generated requests per endpoint
EXAMPLES = 2000


@pytest.fixture(scope="module")
def hostile_api(new_db: Callable[[], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    dsn = seeded(new_db())
    proc = ServiceProcess(dsn, log_path=tmp_path_factory.mktemp("hostile") / "service.log")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def client(hostile_api: ServiceProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hostile_api.base_url, timeout=10) as c:
        yield c


CASES = corpus(Layout(SMALL, real_ids=True))


@pytest.mark.parametrize("case", CASES, ids=[name for name, _ in CASES])
def test_known_hostile_input_is_a_clear_4xx(client: httpx.Client, case: tuple[str, Probe]) -> None:
    _name, probe = case
    resp = send(client, probe)
    assert problem(probe, resp) is None, resp.text
    answer = orjson.loads(resp.content)
    if resp.status_code == 200:
        # only a Vapi envelope may be accepted, and then every call carries an error naming the problem
        assert probe.endpoint.startswith("vapi."), resp.text
        assert all(r["error"] and not r.get("result") for r in answer["results"]), resp.text
    else:
        assert 400 <= resp.status_code < 500 and answer["error"] and answer["detail"], resp.text


def test_generated_hostile_requests_never_fail_the_service(client: httpx.Client, hostile_api: ServiceProcess,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(hostile_api.dsn)
    layout = Layout(SMALL, real_ids=True)
    tallies = fuzz(client, layout, ENDPOINTS, EXAMPLES, rng_seed=13)
    with capsys.disabled():
        for t in tallies:
            print(f"\n  hostile {t.endpoint}: {t.sent} requests, {t.failed} failed ({t.statuses()})", end="")
    for t in tallies:
        assert t.failed == 0, (t.endpoint, t.examples)
        assert t.sent >= EXAMPLES and not t.out_of_time, (t.endpoint, t.sent, t.skipped)
    booked = set().union(*(t.booked for t in tallies))
    cancelled = set().union(*(t.cancelled for t in tallies))
    assert unexpected_changes(before, snapshot(hostile_api.dsn), booked, cancelled) == []
    # the generator does reach the database through every kind of answer, not only through refusals
    statuses = set().union(*(t.by_status for t in tallies))
    assert {200, 201, 400, 401, 404, 409, 413, 422} <= statuses, statuses
    log = hostile_api.log_path.read_text(errors="replace")
    assert "Traceback" not in log and "Exception in ASGI" not in log, log[-3000:]


def test_the_database_comparison_sees_an_unaccounted_change(hostile_api: ServiceProcess) -> None:
    """Negative control: a change no request made is reported."""
    before = snapshot(hostile_api.dsn)
    run_sql(hostile_api.dsn, lambda conn: conn.execute(
        "UPDATE appointments SET duration_minutes = CASE WHEN duration_minutes = 30 THEN 60 ELSE 30 END WHERE id = 3"))
    changed = unexpected_changes(before, snapshot(hostile_api.dsn), set(), set())
    assert any("changed without an accepted request" in c for c in changed), changed


def test_the_log_check_sees_a_traceback(tmp_path: Path) -> None:
    log = tmp_path / "service.log"
    log.write_text("INFO: fine\nTraceback (most recent call last):\n  File \"x\"\nValueError: boom\n")
    assert not log_result(log).passed
    log.write_text("INFO: fine\n")
    assert log_result(log).passed


@pytest.mark.parametrize("endpoint", ["book", "cancel", "vapi.bookClinicAppointment", "vapi.cancelAppointment"])
def test_on_a_deployment_no_probe_can_name_a_real_row(endpoint: str) -> None:
    """Against someone's deployment the suite must never book or cancel: no id anywhere in a request that writes
    may be a plausible row id, however a lax server would read it."""
    layout = Layout(SMALL, real_ids=False)
    bad: list[str] = []

    def ids_in(value: object) -> list[object]:
        if isinstance(value, dict):
            return [v for k, v in value.items() if k in ("contactId", "providerId", "appointmentId")] + [
                x for v in value.values() for x in ids_in(v)]
        if isinstance(value, list):
            return [x for v in value for x in ids_in(v)]
        if isinstance(value, str) and value.lstrip().startswith("{"):
            try:
                return ids_in(json.loads(value))
            except ValueError:
                return []
        return []

    @settings(max_examples=500, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategy(layout, endpoint))
    def check(probe: Probe) -> None:
        # the id in a REST path (a Vapi path holds only the tool's name)
        segments = [] if endpoint.startswith("vapi.") else [
            unquote(s, errors="surrogateescape") for s in probe.path.split("?")[0].split("/")]
        found: list[object] = [s for s in segments if plausible_id(s)]
        with contextlib.suppress(ValueError, RecursionError):  # not JSON: refused before any id is read
            found += [v for v in ids_in(json.loads(probe.body or b"null")) if plausible_id(json.dumps(v))]
        if found:
            bad.append(f"{probe.describe()} -> {found}")

    check()
    assert bad == [], bad[:3]
