"""`bookbench target`: check passes for the built-in profiles against their targets and fails naming the key for a
broken profile; init writes a template that loads, and fills rpc paths from the PostgREST fake's document; schema
prints JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bookbench.cli.app import app
from bookbench.fakes.postgrest import DEFAULT_ANON_KEY, ENV_ANON_KEY
from bookbench.fakes.postgrest.process import PostgrestProcess
from bookbench.pipeline.stack import ServiceProcess
from bookbench.target import profile
from tests.conftest import SMALL

SMALL_OPTS = ["--orgs", str(SMALL.orgs), "--providers-per-org", str(SMALL.providers_per_org),
              "--contacts", str(SMALL.contacts), "--appointments", str(SMALL.appointments), "--seed", str(SMALL.seed)]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def postgrest(small_db: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgrestProcess]:
    with PostgrestProcess(small_db, log_path=tmp_path_factory.mktemp("pgrst") / "target.log") as proc:
        yield proc


def _broken(tmp: Path, old: str, new: str) -> Path:
    text = profile.resolve("reference-rest").read_text()
    assert old in text
    path = tmp / "broken.yaml"
    path.write_text(text.replace(old, new))
    return path


def test_schema_prints_json_and_list_names_the_builtins(tmp_path: Path) -> None:
    code, out = invoke("target", "schema")
    assert code == 0 and json.loads(out)["title"] == "bookbench target profile"
    code, out = invoke("target", "list")
    assert code == 0 and all(n in out for n in ("reference-rest", "reference-vapi", "postgrest"))


def test_init_writes_a_template_that_loads(tmp_path: Path) -> None:
    out = tmp_path / "mine.yaml"
    code, text = invoke("target", "init", "--out", str(out))
    assert code == 0, text
    prof = profile.load(str(out))
    assert set(prof.operations.present()) == {"checkAvailability", "lookupUpcomingAppointment",
                                              "bookClinicAppointment", "cancelAppointment"}
    assert "TODO" not in out.read_text() and out.read_text().count("#") > 30  # every block explained
    code, text = invoke("target", "init", "--out", str(out))
    assert code == 2 and "--force" in text


def test_a_broken_profile_fails_before_any_request_naming_the_key(tmp_path: Path) -> None:
    bad = _broken(tmp_path, "path: /api/v1/appointments\n", "path: /api/v1/appointments/{patient}\n")
    code, out = invoke("target", "check", str(bad), "--target-url", "http://127.0.0.1:9", *SMALL_OPTS)
    assert code == 2 and "operations.bookClinicAppointment.path" in out and "{patient}" in out
    unset = _broken(tmp_path, '"Bearer {cred:key}"', '"Bearer {env:BOOKBENCH_TEST_UNSET_VAR}"')
    code, out = invoke("target", "check", str(unset), "--target-url", "http://127.0.0.1:9", *SMALL_OPTS)
    assert code == 2 and "auth.headers.Authorization" in out and "BOOKBENCH_TEST_UNSET_VAR" in out


def test_an_unreachable_target_exits_3(tmp_path: Path) -> None:
    code, out = invoke("target", "check", "reference-rest", "--target-url", "http://127.0.0.1:9", *SMALL_OPTS)
    assert code == 3 and "ConnectError" in out


@pytest.mark.netns  # names a non-loopback address: runs inside a loopback-only namespace
def test_a_remote_target_needs_allow_remote() -> None:
    code, out = invoke("target", "check", "reference-rest", "--target-url", "http://192.0.2.1:80", *SMALL_OPTS)
    assert code == 2 and "--allow-remote" in out


@pytest.mark.integration
@pytest.mark.parametrize("name", ["reference-rest", "reference-vapi"])
def test_check_passes_for_the_reference_profiles(api: ServiceProcess, name: str) -> None:
    code, out = invoke("target", "check", name, "--target-url", api.base_url, *SMALL_OPTS)
    assert code == 0, out
    assert "3 tenants" in out and "booked (HTTP" in out and f"profile {name} works" in out
    assert out.count("ok  ") >= 4
    key = SMALL.key_secret
    assert key not in out and "Bearer ***" in out


@pytest.mark.integration
def test_check_names_the_key_of_what_the_answers_cannot_read(api: ServiceProcess, tmp_path: Path) -> None:
    never = _broken(tmp_path, "id: {path: appointment_id, as_int: true}", "id: {path: data.appointment_ref}")
    code, out = invoke("target", "check", str(never), "--target-url", api.base_url, *SMALL_OPTS)
    assert code == 2, out
    assert "operations.bookClinicAppointment.answers.0.id" in out and "data.appointment_ref" in out
    assert "no booking to cancel" in out
    unread = _broken(tmp_path, "      - {when: {status: [200]}, outcome: ok}\n      - {when: {status: [404]}, "
                     "outcome: not_found, reason: detail}\n      - {when: {status: [400, 401, 403, 405, 408, 409",
                     "      - {when: {status: [404]}, outcome: not_found, reason: detail}\n"
                     "      - {when: {status: [400, 401, 403, 405, 408, 409")
    code, out = invoke("target", "check", str(unread), "--target-url", api.base_url, *SMALL_OPTS)
    assert code == 2 and "operations.cancelAppointment.answers: no rule reads HTTP 200" in out, out
    code, out = invoke("target", "check", "reference-rest", "--target-url", api.base_url, "--key-secret", "wrong",
                       *SMALL_OPTS)
    assert code == 2 and "auth: checkAvailability got HTTP 401" in out, out


@pytest.mark.integration
def test_check_passes_for_postgrest_against_the_fake(postgrest: PostgrestProcess,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_ANON_KEY, DEFAULT_ANON_KEY)
    code, out = invoke("target", "check", "postgrest", "--target-url", postgrest.base_url, *SMALL_OPTS)
    assert code == 0, out
    assert "token read at access_token; expires in 3600 s" in out and "booked (HTTP 200) id APT-" in out
    assert "/rest/v1/rpc/book_appointment" in out and "ok (HTTP 204)" in out
    assert DEFAULT_ANON_KEY not in out and "apikey: ***" in out and "Bearer ***" in out
    monkeypatch.delenv(ENV_ANON_KEY)
    code, out = invoke("target", "check", "postgrest", "--target-url", postgrest.base_url, *SMALL_OPTS)
    assert code == 2 and "auth.headers.apikey" in out and ENV_ANON_KEY in out


@pytest.mark.integration
def test_init_from_the_fakes_openapi_fills_rpc_paths(postgrest: PostgrestProcess, tmp_path: Path) -> None:
    out = tmp_path / "from-doc.yaml"
    code, text = invoke("target", "init", "--out", str(out), "--from-openapi", f"{postgrest.base_url}/rest/v1/",
                        "--header", f"apikey: {DEFAULT_ANON_KEY}")
    assert code == 0, text
    prof = profile.load(str(out))
    ops = prof.operations.present()
    assert ops["checkAvailability"].path == "/rest/v1/rpc/available_slots"
    assert ops["checkAvailability"].body == {"p_provider_id": "{provider}", "p_day": "{date}"}
    assert ops["bookClinicAppointment"].path == "/rest/v1/rpc/book_appointment"
    assert ops["bookClinicAppointment"].body == {"p_contact_id": "{contact}", "p_provider_id": "{provider}",
                                                 "p_start": "{start}", "p_duration_minutes": "{duration}"}
    assert ops["cancelAppointment"].body == {"p_booking_ref": "{appointment}"}
    upcoming = ops["lookupUpcomingAppointment"]
    assert upcoming.method == "GET" and upcoming.path == "/rest/v1/appointments"
    assert upcoming.query["contact_id"] == "eq.{contact}" and upcoming.query["limit"] == "1"
    assert prof.auth.login is not None and prof.auth.headers["Authorization"] == "Bearer {token}"
    assert "TODO" in out.read_text()  # the login's email and the credentials file are the user's to say
    code, text = invoke("target", "init", "--from-openapi", f"{postgrest.base_url}/rest/v1/")
    assert code == 2 and "apikey" in text  # the fake wants its apikey even for the document


@pytest.mark.integration
def test_a_profile_from_the_fakes_openapi_passes_check_once_its_todos_are_done(
        postgrest: PostgrestProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a newcomer does: init from the document, answer the TODOs (here: the fake's email scheme, and the
    dataset's keys as passwords), check."""
    out = tmp_path / "mine.yaml"
    code, text = invoke("target", "init", "--out", str(out), "--from-openapi", f"{postgrest.base_url}/rest/v1/",
                        "--header", f"apikey: {DEFAULT_ANON_KEY}")
    assert code == 0, text
    done = (out.read_text().replace("TODO-clinic{tenant}", "clinic{tenant}").replace("{cred:password}", "{cred:key}")
            .replace("{source: file, file: credentials.csv}", "{source: dataset}"))
    out.write_text(done)
    monkeypatch.setenv("BOOKBENCH_APIKEY", DEFAULT_ANON_KEY)
    code, text = invoke("target", "check", str(out), *SMALL_OPTS)
    assert code == 0, text


@pytest.mark.integration
def test_check_resolves_a_call_pool_and_names_an_id_key_that_never_matches(
        postgrest: PostgrestProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.target.test_call_pools import CALL_POOLS, call_profile

    monkeypatch.setenv(ENV_ANON_KEY, DEFAULT_ANON_KEY)
    good = call_profile(tmp_path, base_url=postgrest.base_url)
    code, out = invoke("target", "check", str(good), *SMALL_OPTS)
    assert code == 0, out
    assert (f"pools (call): {SMALL.orgs} tenants, {SMALL.contacts} contacts, {SMALL.providers} providers"
            in out.replace("\n", " ")), out
    bad = call_profile(tmp_path, CALL_POOLS.replace("id_key: id}", "id_key: contact_id}"))
    code, out = invoke("target", "check", str(bad), "--target-url", postgrest.base_url, *SMALL_OPTS)
    assert code == 2, out
    assert "pools.contacts_call.id_key" in out and "no 'contact_id' in item 0 of 100, {\"id\":1}" in out, out
