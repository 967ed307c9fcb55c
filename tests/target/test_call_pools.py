"""`pools.source: call`: ids read from list answers (a path, a key, every failure naming the key and what came
back), and end to end against the PostgREST fake: each tenant's own contacts and providers, through its login,
handed to Locust, then one booking made with them."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bookbench.errors import UsageError
from bookbench.fakes.postgrest import DEFAULT_ANON_KEY, ENV_ANON_KEY
from bookbench.fakes.postgrest.process import PostgrestProcess
from bookbench.target import bind, profile
from bookbench.target.client import AsyncCaller
from bookbench.target.listing import ids_from
from bookbench.target.poolspec import ListCall
from bookbench.target.profile import ProfileError
from tests.conftest import SMALL

CALL_POOLS = """pools:
  source: call
  tenants_list: "1-3"
  contacts_call: {path: /rest/v1/contacts, query: {select: id, order: id.asc}, list_path: "", id_key: id}
  providers_call: {path: /rest/v1/providers, query: {select: "id,name"}}
"""


def call_profile(tmp: Path, pools: str = CALL_POOLS, base_url: str | None = None) -> Path:
    """The built-in postgrest profile with its pools read from the API instead of the dataset's layout."""
    text = profile.resolve("postgrest").read_text()
    assert "pools: {source: dataset}\n" in text
    text = text.replace("pools: {source: dataset}\n", pools)
    if base_url is not None:
        text = text.replace("base_url: http://127.0.0.1:3000", f"base_url: {base_url}")
    path = tmp / "postgrest-call.yaml"
    path.write_text(text)
    return path


def test_ids_are_read_at_the_path_and_key() -> None:
    plain = ListCall(path="/x")
    assert ids_from(plain, "k", 1, 200, b'[{"id": 3}, {"id": 1}, {"id": 3}]') == (3, 1)  # order kept, once each
    nested = ListCall(path="/x", list_path="data.items", id_key="ref.value")
    assert ids_from(nested, "k", 1, 200, b'{"data": {"items": [{"ref": {"value": "P-1"}}]}}') == ("P-1",)
    bare = ListCall(path="/x", id_key=None)
    assert ids_from(bare, "k", 1, 200, b'["a", "b"]') == ("a", "b")


@pytest.mark.parametrize(("status", "body", "key", "said"), [
    (200, b'[{"uid": 1}]', "pools.contacts_call.id_key", "no 'id' in item 0 of 1, {\"uid\":1}"),
    (200, b"[]", "pools.contacts_call.id_key", "the list is empty"),
    (200, b'[{"id": true}]', "pools.contacts_call.id_key", "'id' of item 0 of 1 is true, not an id"),
    (200, b'{"rows": []}', "pools.contacts_call.list_path", "no list (the answer itself)"),
    (200, b"not json", "pools.contacts_call.list_path", "not json"),
    (401, b'{"message": "JWT expired"}', "pools.contacts_call", "refused tenant 2's credentials"),
    (404, b'{"code": "PGRST205"}', "pools.contacts_call", "not answered with a success: tenant 2: HTTP 404"),
])
def test_an_answer_without_ids_names_the_key_and_what_came_back(status: int, body: bytes, key: str,
                                                                  said: str) -> None:
    with pytest.raises(UsageError) as err:
        ids_from(ListCall(path="/x"), "pools.contacts_call", 2, status, body)
    text = str(err.value)
    assert text.startswith(key + ":") and said in text and f"HTTP {status}" in text, text


def test_a_call_pool_names_what_it_misses(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="pools: Value error, source call needs tenants_list, providers_call"):
        profile.load(str(call_profile(tmp_path, "pools: {source: call, contacts_call: {path: /c}}\n")))
    with pytest.raises(ProfileError, match=r"pools.contacts_call.query: .*unknown placeholder\(s\) \{contact\}"):
        profile.load(str(call_profile(tmp_path, CALL_POOLS.replace("select: id,", "id: 'eq.{contact}',"))))
    prof = profile.load(str(call_profile(tmp_path, CALL_POOLS.replace("/rest/v1/providers", "\"/p/{tenant}\""))))
    assert prof.pools.providers_call is not None and prof.pools.providers_call.path == "/p/{tenant}"


@pytest.fixture(scope="module")
def postgrest(small_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgrestProcess]:
    with PostgrestProcess(small_db, log_path=tmp_path_factory.mktemp("pgrst") / "target.log") as proc:
        yield proc


@pytest.mark.integration
def test_a_call_pool_reads_each_tenants_own_ids_and_books_with_them(
        postgrest: PostgrestProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_ANON_KEY, DEFAULT_ANON_KEY)
    path = call_profile(tmp_path, base_url=postgrest.base_url)
    target = bind.bind(str(path), "rest", SMALL)  # the profile's base_url: no --target-url needed
    assert [t.id for t in target.tenants] == [1, 2, 3]
    for tenant in target.tenants:
        assert isinstance(tenant.id, int)
        assert tenant.contacts == tuple(SMALL.contacts_of(tenant.id))
        assert set(tenant.providers) == set(SMALL.providers_of(tenant.id))
    # Locust cannot call the API before the load: it gets the tenants the orchestrator read
    sent = bind.for_locust(str(path), target)
    assert sent["tenants"][1] == {"id": 2, "contacts": list(SMALL.contacts_of(2)),
                                  "providers": list(target.tenants[1].providers)}
    assert "pools" not in str(sent) and DEFAULT_ANON_KEY not in str(sent)

    async def one_booking() -> tuple[str, object]:
        async with httpx.AsyncClient(base_url=postgrest.base_url, follow_redirects=False) as client:
            caller = AsyncCaller(target, client)
            tenant = target.tenants[2]
            rng = random.Random(11)
            values = target.values(tenant, rng, start=target.slot(rng, (110, 120)))
            booked = await caller.call("bookClinicAppointment", tenant, values)
            assert booked.kind == "booked", booked.describe()
            cancelled = await caller.call("cancelAppointment", tenant, target.values(
                tenant, rng, appointment=booked.appointment_id))
            return cancelled.kind, booked.appointment_id

    kind, ref = asyncio.run(one_booking())
    assert kind == "ok" and str(ref).startswith("APT-")


@pytest.mark.integration
def test_a_call_pool_that_finds_nothing_stops_before_the_load(
        postgrest: PostgrestProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_ANON_KEY, DEFAULT_ANON_KEY)
    empty = call_profile(tmp_path, CALL_POOLS.replace("{select: id, order: id.asc}", "{id: eq.0}"))
    with pytest.raises(UsageError, match=r"^pools.contacts_call.id_key: the list is empty.*tenant 1: HTTP 200 \[\]"):
        bind.bind(str(empty), "rest", SMALL, base_url=postgrest.base_url)
    wrong = call_profile(tmp_path, CALL_POOLS.replace('providers_call: {path: /rest/v1/providers,',
                                                      'providers_call: {path: /rest/v1/providerz,'))
    with pytest.raises(UsageError, match=r"^pools.providers_call: .*HTTP 404 .*PGRST205"):
        bind.bind(str(wrong), "rest", SMALL, base_url=postgrest.base_url)
    with pytest.raises(UsageError, match=r"^auth.login: tenant 1 \(for pools.contacts_call\): login answered HTTP 400"):
        bind.bind(str(call_profile(tmp_path)), "rest", dataclasses.replace(SMALL, key_secret="x"),
                  base_url=postgrest.base_url)


def test_a_target_of_a_call_pool_needs_an_address(tmp_path: Path) -> None:
    text = call_profile(tmp_path).read_text().replace("base_url: http://127.0.0.1:3000\n", "")
    path = tmp_path / "nowhere.yaml"
    path.write_text(text)
    with pytest.raises(UsageError, match=r"pools\.source call needs the API's address"):
        bind.bind(str(path), "rest", SMALL)
