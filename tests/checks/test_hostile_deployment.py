"""`check hostile --base-url` on someone's deployment: it never changes a row it did not create, wherever the
deployment's ids lie (near 2^63, at 2^53, 2^31, 2^32), and any change it sees during the check is a FAIL."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator

import asyncpg
import httpx
import pytest

from bookbench.checks import hostile
from bookbench.checks.base import CheckResult, CheckTarget
from bookbench.checks.hostile_inputs import MAX_ID, Probe
from bookbench.checks.runner import run_suites
from bookbench.config.dataset import api_key
from bookbench.pipeline.stack import ServiceProcess
from tests.conftest import SMALL, fetch, run_async, run_sql, seeded

pytestmark = pytest.mark.integration

# valid bigints a deployment may hold: the top of the range (where the first fix put its "impossible" ids), the
# float-exact limit, the 32-bit limits, and the boundaries the hostile corpus draws
NEAR_MAX = list(range(9223372036854775800, MAX_ID + 1))
BOUNDARIES = [2**53, 2**53 + 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**62, 2**62 + 1, MAX_ID - 10**6]
# rows the negative controls change on purpose (kept out of the rows the check must never touch)
CHANGED_BY_HAND, ACCEPTED_BY_MISTAKE = 2**40 + 1, 2**40 + 2
EXAMPLES = 150  # per endpoint: enough that the old generator drew MAX_ID and its neighbours


def _insert(dsn: str, ids: list[int]) -> None:
    async def work(conn: asyncpg.Connection) -> None:
        far = dt.datetime.now(dt.UTC).replace(hour=10, minute=0, second=0, microsecond=0) + dt.timedelta(days=600)
        for n, appointment_id in enumerate(ids):
            # org 1 (the key the probes use) and org 2 (the "other tenant" key they also send); the controls in 1
            org = 1 if appointment_id in (CHANGED_BY_HAND, ACCEPTED_BY_MISTAKE) else 1 + n % 2
            await conn.execute(
                "INSERT INTO appointments (id, org_id, contact_id, provider_id, scheduled_at, duration_minutes) "
                "VALUES ($1, $2, $3, $4, $5, 30)", appointment_id, org, SMALL.contacts_of(org)[0],
                SMALL.providers_of(org)[0], far + dt.timedelta(hours=n))

    run_sql(dsn, work)


@pytest.fixture(scope="module")
def deployment(new_db: Callable[[], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    dsn = seeded(new_db())
    _insert(dsn, NEAR_MAX + BOUNDARIES + [CHANGED_BY_HAND, ACCEPTED_BY_MISTAKE])
    proc = ServiceProcess(dsn, log_path=tmp_path_factory.mktemp("deployment") / "service.log")
    proc.start()
    yield proc
    proc.stop()


def _statuses(dsn: str) -> dict[int, str]:
    return {r["id"]: r["status"] for r in fetch(dsn, "SELECT id, status FROM appointments")}


def _check(proc: ServiceProcess, with_dsn: bool, examples: int = EXAMPLES) -> list[CheckResult]:
    """As `bookbench check hostile --base-url <url> [--dsn <dsn>]` runs it: a target that is not a scratch
    database, the deployment's layout given."""
    target = CheckTarget(proc.base_url, proc.dsn if with_dsn else None, SMALL)
    return run_async(run_suites(target, ["hostile"], examples=examples))


def _not_http_level(results: list[CheckResult]) -> list[CheckResult]:
    # the HTTP-level probes judge the service's own behaviour (tests/checks/test_hostile_http.py), not safety
    return [r for r in results if not r.name.startswith("http:")]


@pytest.mark.slow
@pytest.mark.parametrize("with_dsn", [False, True], ids=["api-only", "with-dsn"])
def test_check_hostile_on_a_deployment_changes_no_row(deployment: ServiceProcess, with_dsn: bool) -> None:
    before = _statuses(deployment.dsn)
    results = _check(deployment, with_dsn)
    after = _statuses(deployment.dsn)
    changed = {i: (before.get(i), after.get(i)) for i in set(before) | set(after) if before.get(i) != after.get(i)}
    assert changed == {}, changed
    # nothing changed, so the safety verdicts pass; and one of them says what was compared
    failed = [(r.name, r.detail) for r in _not_http_level(results) if not r.passed]
    assert failed == []
    assert any(r.name.startswith("deployment:") for r in results), [r.name for r in results]


def test_a_change_during_the_check_is_a_fail(deployment: ServiceProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative control with --dsn: a cancellation the check's requests did not make (an extra request beside
    them) is seen in the before/after comparison."""
    replay = hostile.replay_corpus

    def replay_and_cancel(client: httpx.Client, layout: object) -> object:
        resp = client.post(f"/api/v1/appointments/{CHANGED_BY_HAND}/cancel",
                           headers={"Authorization": f"Bearer {api_key(1, SMALL.key_secret)}"})
        assert resp.status_code == 200, resp.text
        return replay(client, layout)  # type: ignore[arg-type]

    monkeypatch.setattr(hostile, "replay_corpus", replay_and_cancel)
    results = _check(deployment, with_dsn=True, examples=5)
    verdicts = [r for r in results if r.name.startswith("deployment:")]
    assert verdicts and not all(r.passed for r in verdicts), [(r.name, r.passed, r.detail) for r in results]


def test_a_write_the_deployment_accepted_is_a_fail(deployment: ServiceProcess,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Negative control without --dsn: a cancel that names a real row (as if the generator and its guard both had
    a hole) is answered 200, and that answer alone makes the check FAIL."""
    real = Probe("cancel", "POST", f"/api/v1/appointments/{ACCEPTED_BY_MISTAKE}/cancel", None,
                 (("Authorization", f"Bearer {api_key(1, SMALL.key_secret)}"),))
    monkeypatch.setattr(hostile, "corpus", lambda layout: [("a real row", real)])
    monkeypatch.setattr(hostile, "withheld", lambda probe, layout: None)
    results = _check(deployment, with_dsn=False, examples=5)
    assert _statuses(deployment.dsn)[ACCEPTED_BY_MISTAKE] == "cancelled"
    verdicts = [r for r in results if r.name.startswith("deployment:")]
    assert verdicts and not all(r.passed for r in verdicts), [(r.name, r.passed, r.detail) for r in results]
    assert any(str(ACCEPTED_BY_MISTAKE) in r.detail for r in verdicts)
