"""`target init`'s output: a profile as commented YAML, every key explained, built from a draft (the reference
service's shape by default, or what openapi.py recognised); the text loads with profile.load as written."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

# the answer rules of two common shapes: plain REST status codes, and PostgREST's {code, message} errors
REST_RULES = {
    "read": [
        {"when": {"status": [200]}, "outcome": "ok"},
        {"when": {"status": [404]}, "outcome": "not_found", "reason": "detail"},
        {"when": {"status": [400, 401, 403, 405, 408, 413, 415, 422]}, "outcome": "refused", "reason": "detail"},
        {"when": {"status": [500, 502, 503, 504]}, "outcome": "error"},
    ],
    "book": [
        {"when": {"status": [409]}, "outcome": "slot_taken"},
        {"when": {"status": [404]}, "outcome": "not_found", "reason": "detail"},
        {"when": {"status": [400, 401, 403, 405, 408, 413, 415, 422]}, "outcome": "refused", "reason": "detail"},
        {"when": {"status": [500, 502, 503, 504]}, "outcome": "error"},
    ],
}
POSTGREST_RULES = {
    "read": [
        {"when": {"status": [200]}, "outcome": "ok"},
        {"when": {"status": [400], "json": {"code": "P0001"}, "matches": {"message": "not found"}},
         "outcome": "not_found", "reason": "message"},
        {"when": {"status": [400, 401, 403, 404, 405, 406, 409, 422]}, "outcome": "refused", "reason": "message"},
        {"when": {"status": [500, 502, 503, 504]}, "outcome": "error", "reason": "message"},
    ],
    "book": [
        {"when": {"status": [409], "json": {"code": "23505"}}, "outcome": "slot_taken"},
        {"when": {"status": [400], "json": {"code": "P0001"}, "matches": {"message": "not found"}},
         "outcome": "not_found", "reason": "message"},
        {"when": {"status": [400, 401, 403, 404, 405, 406, 422]}, "outcome": "refused", "reason": "message"},
        {"when": {"status": [500, 502, 503, 504]}, "outcome": "error", "reason": "message"},
    ],
}


@dataclass
class OpDraft:
    """One operation as it will be written: the request, and how its answer reads."""

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    body: Any = None
    ok_status: list[int] = field(default_factory=lambda: [200])  # what the success answer's status is
    id_path: str | None = None  # booking: where the new id is
    id_as_int: bool = False
    empty_ok: bool = False  # the success answer has no body (204)
    notes: list[str] = field(default_factory=list)  # comment lines written above the operation (TODOs)


@dataclass
class Draft:
    name: str
    description: str
    base_url: str
    auth: dict[str, Any]
    auth_notes: list[str]
    ops: dict[str, OpDraft]
    rules: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: REST_RULES)
    source: str = ""  # where the draft came from, said in the header comment
    pools_notes: list[str] = field(default_factory=list)
    audit: bool = True


def reference(name: str) -> Draft:
    """The reference service's REST shape (what `bookbench serve` answers): a template that works as written."""
    return Draft(
        name=name, description="my clinic-booking API (started from the reference service's shape)",
        base_url="http://127.0.0.1:8000",
        auth={"headers": {"Authorization": "Bearer {cred:key}"}, "credentials": {"source": "dataset"}},
        auth_notes=[],
        ops={
            "checkAvailability": OpDraft("GET", "/api/v1/providers/{provider}/availability", {"date": "{date}"}),
            "lookupUpcomingAppointment": OpDraft("GET", "/api/v1/contacts/{contact}/appointments/upcoming"),
            "bookClinicAppointment": OpDraft(
                "POST", "/api/v1/appointments",
                body={"contactId": "{contact}", "providerId": "{provider}", "start": "{start}",
                      "durationMinutes": "{duration}"},
                ok_status=[201], id_path="appointment_id", id_as_int=True),
            "cancelAppointment": OpDraft("POST", "/api/v1/appointments/{appointment}/cancel"),
        })


def _flow(value: Any) -> str:
    """One value in YAML flow style on one line (placeholders quoted: a bare `{` opens a mapping)."""
    return str(yaml.safe_dump(value, default_flow_style=True, width=10_000, sort_keys=False)).strip().removesuffix(
        "\n...").strip()


def _comment(lines: list[str], indent: str) -> list[str]:
    return [f"{indent}# {line}" for line in lines]


def _answers(op_name: str, op: OpDraft, rules: dict[str, list[dict[str, Any]]]) -> list[str]:
    out = ["    answers:"]
    if op_name == "bookClinicAppointment":
        rule: dict[str, Any] = {"when": {"status": op.ok_status}, "outcome": "booked",
                                "id": {"path": op.id_path or "id", **({"as_int": True} if op.id_as_int else {})}}
        if op.id_path is None:
            out.append("      # TODO: the JSON path of the new appointment's id in the booking answer")
        out.append(f"      - {_flow(rule)}")
        out += [f"      - {_flow(r)}" for r in rules["book"]]
        return out
    first = rules["read"][0]
    if op.empty_ok:
        out.append(f"      - {_flow({'when': {'status': op.ok_status, 'empty_body': True}, 'outcome': 'ok'})}")
    elif first["when"].get("status") != op.ok_status:
        out.append(f"      - {_flow({'when': {'status': op.ok_status}, 'outcome': 'ok'})}")
    out += [f"      - {_flow(r)}" for r in rules["read"]]
    return out


def _operation(op_name: str, op: OpDraft, rules: dict[str, list[dict[str, Any]]]) -> list[str]:
    out = [*_comment(op.notes, "  "), f"  {op_name}:", f"    method: {op.method}", f"    path: {_flow(op.path)}"]
    if op.query:
        out.append(f"    query: {_flow(op.query)}")
    if op.body is not None:
        out.append(f"    body: {_flow(op.body)}")
    return out + _answers(op_name, op, rules)


_HEAD = """\
# A bookbench target profile: where a clinic-booking API lives and how its four operations are asked and answered.
# Check it with: bookbench target check {file}  (one request of each operation, each answer read as below)
# Editors validate it with the schema from `bookbench target schema --out profile.schema.json`.
{source}
# Placeholders in paths, query values, headers and bodies: {{tenant}} {{contact}} {{provider}} {{start}} {{end}}
# {{duration}} (minutes) {{date}} (the start's day) {{now}} {{appointment}} (the id a booking answered) {{call_id}}
# {{token}} (the login's token), {{env:NAME}} (an environment variable) and {{cred:FIELD}} (the tenant's credentials).
# A body value that is one placeholder alone keeps its type ("{{provider}}" stays a number when the id is one).
version: 1
name: {name}
description: {description}
# --target-url wins over base_url; either way load goes to loopback only unless --allow-remote
base_url: {base_url}
timeout_s: 10                    # seconds per request
"""

_AUTH_DOC = """\
# auth: headers (and query parameters) every request of a tenant carries. Kinds:
#   static header:     headers: {Authorization: "Bearer {cred:token}"}   or  {X-Api-Key: "{env:MY_KEY}"}
#   query key:         query: {api_key: "{cred:key}"}
#   login:             a call whose answer gives a token, used as {token}; renewed refresh_before_s before it expires
#     login: {method: POST, path: /auth/login, body: {user: "clinic{tenant}", password: "{cred:password}"},
#             token_path: access_token, expires_in_path: expires_in, default_ttl_s: 300, refresh_before_s: 30}
# credentials: where {cred:FIELD} comes from, per tenant
#   {source: dataset}                           the reference dataset's API keys (field key; --key-secret)
#   {source: env, env_pattern: CLINIC_{tenant}_TOKEN}   field token from one variable per tenant
#   {source: file, file: creds.csv}             a CSV: a tenant column and one column per field (path relative
#                                               to this file); secrets are never written to a run folder
#   {source: none}
"""

_TAIL = """\
# pools: who calls (tenants) and about whom (contacts, providers). Sources:
#   {source: dataset}                                    the layout `bookbench db seed` writes (dataset options)
#   {source: inline, tenants: {"1": {contacts: "1-500", providers: [3, 4]}}}   lists, or ranges as text
#   {source: csv, file: pools.csv}                       columns tenant, kind (contact|provider), id
#   {source: sql, contacts_sql: "SELECT org_id AS tenant, id FROM contacts",
#                 providers_sql: "SELECT org_id AS tenant, id FROM providers"}   run once through --dsn
#   {source: call, tenants_list: "1-5",                  the API's own lists, asked once per tenant (its auth)
#    contacts_call: {path: /contacts, list_path: "", id_key: id}, providers_call: {path: /providers}}
pools: @POOLS@
# grid: where bookings are tried: slot_minutes slots between opens and closes (HH:MM, in timezone),
# on a day days_ahead [first, last] from today
grid: {slot_minutes: 30, opens: "09:00", closes: "17:00", days_ahead: [1, 120], timezone: UTC}
# times: how {start} {end} {now} are written: iso (2030-01-02T09:30:00+00:00), iso_z (...Z), epoch_s,
# epoch_ms, or local (no offset), in timezone (an IANA name such as Europe/London)
times: {format: iso, timezone: UTC}
# operations: method, path, query, headers, body (a JSON template), and answers: rules tried in order, the first
# whose `when` holds decides the outcome. when: status [codes], json {path: value}, json_exists [paths],
# json_missing [paths], matches {path: regex}, empty_body true|false (paths are dotted: results.0.error).
# outcome: ok | booked (needs id: {path: ...} or {header: Location, regex: "/(\\\\d+)$"}, as_int) | slot_taken |
# not_found | refused | error; reason: the JSON path of a refusal's text. An answer no rule reads is counted as
# `unclassified` and shown. success: the outcomes that count as a successful request (default ok, booked,
# slot_taken). Booking is required; an operation left out is never sent.
operations:
"""

_AUDIT = """\
# audit: the table and columns the double-booking audit and the reconciliation read through --dsn (defaults: the
# reference schema). answer_id_regex maps an id the API answers to the row's id ("APT-000123" -> 123). Without an
# audit block those verdicts are reported as not measurable.
audit: @AUDIT@
"""


def render(d: Draft, file: str = "PROFILE.yaml") -> str:
    source = f"# Filled from {d.source}; check every TODO." if d.source else \
        "# This template is the reference service's REST shape (`bookbench serve`): it works as written; change\n" \
        "# what differs in your API."
    text = _HEAD.format(file=file, source=source, name=_flow(d.name),
                        description=_flow(d.description), base_url=_flow(d.base_url))
    text += _AUTH_DOC
    text += "\n".join(_comment(d.auth_notes, "")) + ("\n" if d.auth_notes else "")
    text += "auth:\n" + "".join(f"  {k}: {_flow(v)}\n" for k, v in d.auth.items())
    pools_at = _TAIL.index("pools: @POOLS@")
    text += _TAIL[:pools_at] + "".join(f"# {n}\n" for n in d.pools_notes) + _TAIL[pools_at:].replace(
        "@POOLS@", "{source: dataset}")
    for op_name, op in d.ops.items():
        text += "\n".join(_operation(op_name, op, d.rules)) + "\n"
    text += _AUDIT.replace("@AUDIT@", "{}" if d.audit else "null")
    return text
