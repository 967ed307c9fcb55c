"""`target init --from-openapi`: read an OpenAPI 2 (Swagger) or 3 document and recognise the four operations by
name and shape (rpc functions, a table of appointments, REST routes), filling paths, methods, query and body keys
with placeholders; what it cannot tell becomes a TODO comment, never a guess that looks certain."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from bookbench import net
from bookbench.errors import UsageError
from bookbench.target.draft import POSTGREST_RULES, REST_RULES, Draft, OpDraft

_METHODS = ("get", "post", "put", "patch", "delete")
# parameter or property names -> the placeholder they take; first match wins (order matters: "provider_id"
# must not read as an appointment id)
_VALUE_HINTS: tuple[tuple[str, str], ...] = (
    (r"contact|patient|customer|client|member", "{contact}"),
    (r"provider|practitioner|doctor|clinician|staff|resource|dentist", "{provider}"),
    (r"duration|minutes|length", "{duration}"),
    (r"end|until|finish", "{end}"),
    (r"start|time|scheduled|slot|when|at$", "{start}"),
    (r"day|date", "{date}"),
    (r"org|tenant|clinic|practice|account", "{tenant}"),
    (r"appointment|booking|ref|^p?_?id$", "{appointment}"),
)


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # with the base path
    words: str  # what the name and description say, lower case
    body: dict[str, Any]  # property -> schema
    required: list[str]
    query: list[str]
    path_params: list[str]
    responses: dict[str, Any]


def parse_headers(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition(":")
        if not sep or not name.strip():
            raise UsageError(f"--header {value.split(':')[0]!r}...: write it as 'Name: value'")
        out[name.strip()] = rest.strip()
    return out


def fetch(source: str, headers: dict[str, str], allow_remote: bool) -> dict[str, Any]:
    """The document from a file, or from a URL on loopback (the loopback rule applies; redirects not followed)."""
    from bookbench.config.targets import is_http_url, pin_loopback

    if is_http_url(source):

        url = pin_loopback(source, "--from-openapi", allow_remote)
        resp = net.get(url, headers={"Accept": "application/openapi+json, application/json", **headers}, timeout=10)
        if resp.status_code != 200:
            raise UsageError(f"--from-openapi {source}: HTTP {resp.status_code} "
                             f"{resp.text[:120]!r} (an apikey? pass --header 'apikey: ...')")
        text = resp.text
    else:
        try:
            text = Path(source).read_text()
        except OSError as exc:
            raise UsageError(f"--from-openapi {source}: {exc.strerror}") from None
    try:
        doc = yaml.safe_load(text)  # JSON is YAML
    except yaml.YAMLError as exc:
        raise UsageError(f"--from-openapi {source}: neither JSON nor YAML ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict) or not (
            "swagger" in doc or "openapi" in doc):
        raise UsageError(f"--from-openapi {source}: not an OpenAPI 2 or 3 document (no swagger/openapi and paths)")
    return doc


def _ref(doc: dict[str, Any], node: Any) -> Any:
    """A $ref inside the document, followed (a few levels; a cycle stops)."""
    for _ in range(8):
        if not isinstance(node, dict) or "$ref" not in node:
            return node
        ref = str(node["$ref"])
        if not ref.startswith("#/"):
            return {}
        target: Any = doc
        for step in ref[2:].split("/"):
            target = target.get(step.replace("~1", "/").replace("~0", "~"), {}) if isinstance(target, dict) else {}
        node = target
    return node


def _base(doc: dict[str, Any], source: str) -> tuple[str, str]:
    """(base URL, base path): OpenAPI 3's first server, or Swagger's host + basePath; the document's own address
    when it names none."""
    where = urlsplit(source) if source.startswith(("http://", "https://")) else None
    origin = f"{where.scheme}://{where.netloc}" if where else "http://127.0.0.1:8000"
    if "openapi" in doc:
        servers = doc.get("servers") or [{}]
        url = str(servers[0].get("url", "")) if isinstance(servers[0], dict) else ""
        parts = urlsplit(url)
        if parts.scheme:
            return f"{parts.scheme}://{parts.netloc}", parts.path.rstrip("/")
        return origin, url.rstrip("/")
    base_path = str(doc.get("basePath", "")).rstrip("/")
    return origin, base_path


def endpoints(doc: dict[str, Any], base_path: str) -> Iterator[Endpoint]:
    for path, item in doc["paths"].items():
        if not isinstance(item, dict):
            continue
        shared = [_ref(doc, p) for p in item.get("parameters", [])]
        for method in _METHODS:
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            params = shared + [_ref(doc, p) for p in op.get("parameters", [])]
            body: dict[str, Any] = {}
            required: list[str] = []
            schema: Any = None
            for p in params:
                if isinstance(p, dict) and p.get("in") == "body":
                    schema = p.get("schema")
            content = _ref(doc, op.get("requestBody", {})).get("content", {})
            for media, spec in content.items():
                if "json" in media and isinstance(spec, dict):
                    schema = spec.get("schema")
                    break
            schema = _ref(doc, schema)
            if isinstance(schema, dict):
                body = {k: _ref(doc, v) for k, v in (schema.get("properties") or {}).items()}
                required = list(schema.get("required") or [])
            words = " ".join(str(x) for x in (path, op.get("operationId", ""), op.get("summary", ""),
                                              " ".join(map(str, op.get("tags", []))))).lower()
            yield Endpoint(method.upper(), base_path + path, words, body, required,
                           [str(p.get("name")) for p in params if isinstance(p, dict) and p.get("in") == "query"],
                           [str(p.get("name")) for p in params if isinstance(p, dict) and p.get("in") == "path"]
                           or re.findall(r"\{([^}]+)\}", path), op.get("responses") or {})


def _value_for(name: str, op: str) -> str | None:
    low = name.lower()
    for pattern, placeholder in _VALUE_HINTS:
        if re.search(pattern, low):
            if placeholder == "{appointment}" and op != "cancelAppointment":
                continue
            return placeholder
    return None


def _pick(eps: list[Endpoint], op: str) -> Endpoint | None:
    """The endpoint that reads as `op`, by name and shape."""
    def score(ep: Endpoint) -> int:
        w = ep.words
        if op == "checkAvailability":
            return 3 * ("avail" in w) + 2 * ("slot" in w) + ("free" in w) - 5 * ("book" in w or "cancel" in w)
        if op == "lookupUpcomingAppointment":
            last = ep.path.rstrip("/").rsplit("/", 1)[-1]
            return (4 * ("upcoming" in w) + 2 * (ep.method == "GET" and last in ("appointments", "bookings"))
                    + ("next" in w) - 5 * (ep.method != "GET" and "upcoming" not in w))
        if op == "bookClinicAppointment":
            return (4 * ("book" in w) + 2 * (ep.method == "POST" and ep.path.rstrip("/").endswith(
                ("appointments", "bookings"))) + ("create" in w) - 6 * ("cancel" in w or "avail" in w))
        return 4 * ("cancel" in w) + (ep.method == "DELETE" and "appointment" in w)
    best = max(eps, key=score, default=None)
    return best if best is not None and score(best) > 0 else None


def _fill(op: str, ep: Endpoint, postgrest: bool, doc: dict[str, Any]) -> OpDraft:
    notes: list[str] = [f"from {ep.method} {ep.path}" + (f" ({ep.words.split(' ', 1)[1].strip()})"
                                                          if " " in ep.words.strip() else "")]
    path = ep.path
    for name in ep.path_params:
        value = _value_for(name, op)
        if value is None:
            notes.append(f"TODO: path parameter {{{name}}}: which value? (written as TODO)")
        path = path.replace("{" + name + "}", value or "TODO")
    body: dict[str, Any] | None = None
    if ep.body:
        body = {}
        for name in ep.body:
            value = _value_for(name, op)
            if value is None:
                if name in ep.required:
                    notes.append(f"TODO: body key {name}: which value?")
                    body[name] = "TODO"
                continue
            body[name] = value
    elif ep.method in ("POST", "PUT", "PATCH") and op != "cancelAppointment":
        notes.append("TODO: the document shows no JSON body for this call; add body: if it takes one")
    query: dict[str, str] = {}
    if postgrest and ep.method == "GET":
        query = _table_read(ep, doc)
    else:
        for name in ep.query:
            value = _value_for(name, op)
            if value is not None:
                query[name] = value
    draft = OpDraft(ep.method, path, query, body, notes=notes)
    if op == "bookClinicAppointment":
        draft.ok_status = [200] if postgrest else _ok_status(ep)
        draft.id_path = _id_path(ep, doc)
    elif op == "cancelAppointment" and postgrest:
        draft.ok_status, draft.empty_ok = [204], True
    return draft


def _ok_status(ep: Endpoint) -> list[int]:
    codes = sorted(int(c) for c in ep.responses if str(c).isdigit() and 200 <= int(c) < 300)
    return codes[:1] or [200]


def _id_path(ep: Endpoint, doc: dict[str, Any]) -> str | None:
    for code, resp in ep.responses.items():
        if not str(code).startswith("2"):
            continue
        resp = _ref(doc, resp)
        schema = _ref(doc, resp.get("schema") or next(
            (v.get("schema") for k, v in (resp.get("content") or {}).items() if "json" in k), None))
        props = (schema or {}).get("properties") or {}
        for key in props:
            if re.search(r"^(id|appointment_?id|appointmentId|booking_?(id|ref)|bookingId|reference)$", key):
                return str(key)
    return None


def _table_read(ep: Endpoint, doc: dict[str, Any]) -> dict[str, str]:
    """PostgREST's filtered table read for the caller's next appointment: col=op.value filters, order, limit."""
    cols = [q for q in ep.query if q not in ("select", "order", "limit", "offset", "on_conflict", "columns")]
    query: dict[str, str] = {}
    start = next((c for c in cols if re.search(r"scheduled|start", c)), None)
    for col in cols:
        value = _value_for(col, "lookupUpcomingAppointment")
        if value == "{contact}":
            query[col] = "eq.{contact}"
    if "status" in cols:
        query["status"] = "eq.booked"
    if start:
        query[start] = "gte.{now}"
        query["order"] = f"{start}.asc"
    query["limit"] = "1"
    return query


def _auth(doc: dict[str, Any], postgrest: bool) -> tuple[dict[str, Any], list[str]]:
    schemes = doc.get("securityDefinitions") or (doc.get("components") or {}).get("securitySchemes") or {}
    headers: dict[str, str] = {}
    query: dict[str, str] = {}
    notes: list[str] = []
    bearer = False
    for name, s in schemes.items():
        s = _ref(doc, s)
        kind, where, field = s.get("type"), s.get("in"), str(s.get("name", name))
        if (kind == "apiKey" and field.lower() == "authorization") or (kind == "http" and s.get("scheme") == "bearer"):
            bearer = True
        elif kind == "apiKey":
            env = "BOOKBENCH_" + re.sub(r"[^A-Z0-9]", "_", field.upper())
            (query if where == "query" else headers)[field] = f"{{env:{env}}}"
            notes.append(f"TODO: export {env} (the {field} every request carries)")
    auth: dict[str, Any] = {}
    if bearer and postgrest:
        headers["Authorization"] = "Bearer {token}"
        login: dict[str, Any] = {"method": "POST", "path": "/auth/v1/token", "query": {"grant_type": "password"},
                                 "body": {"email": "TODO-clinic{tenant}@example.test", "password": "{cred:password}"},
                                 "token_path": "access_token", "expires_in_path": "expires_in"}
        if headers:
            login["headers"] = {k: v for k, v in headers.items() if k != "Authorization"}
        auth["login"] = login
        notes.append("TODO: the login (Supabase's password grant is assumed): each clinic's email, and its password "
                     "from the credentials' password field")
        auth["credentials"] = {"source": "file", "file": "credentials.csv"}
        notes.append("TODO: credentials.csv beside this file: columns tenant,password")
    elif bearer:
        headers["Authorization"] = "Bearer {cred:token}"
        auth["credentials"] = {"source": "env", "env_pattern": "BOOKBENCH_TOKEN_{tenant}"}
        notes.append("TODO: export BOOKBENCH_TOKEN_<tenant> for each tenant (its bearer token)")
    if not schemes:
        notes.append("TODO: the document names no security scheme; add the headers your API needs")
    auth = {"headers": headers, **({"query": query} if query else {}), **auth}
    return auth, notes


def draft_from(doc: dict[str, Any], name: str, source: str) -> Draft:
    base_url, base_path = _base(doc, source)
    eps = list(endpoints(doc, base_path))
    postgrest = any("/rpc/" in ep.path for ep in eps) or "rowFilter." in str(doc.get("parameters", {}))[:100_000]
    ops: dict[str, OpDraft] = {}
    for op in ("checkAvailability", "lookupUpcomingAppointment", "bookClinicAppointment", "cancelAppointment"):
        ep = _pick(eps, op)
        if ep is not None:
            eps.remove(ep)
            ops[op] = _fill(op, ep, postgrest, doc)
        elif op == "bookClinicAppointment":
            # the one operation a profile must have: written as a placeholder to fill in
            ops[op] = OpDraft("POST", "/TODO-booking-path", body={"contact": "{contact}", "provider": "{provider}",
                                                                  "start": "{start}"},
                              notes=["TODO: no booking call recognised in the document; write its path and body"])
        else:
            pass  # left out: never sent; the TODO list in the header says so
    missing = [op for op in ("checkAvailability", "lookupUpcomingAppointment", "cancelAppointment") if op not in ops]
    book, cancel = ops["bookClinicAppointment"], ops.get("cancelAppointment")
    if book.id_path is None and cancel is not None and isinstance(cancel.body, dict):
        # an rpc's answer is not in the document; the key the cancel takes is the best hint of the id's name
        key = next((k for k, v in cancel.body.items() if v == "{appointment}"), None)
        if key is not None:
            book.id_path = re.sub(r"^p_", "", key)
            book.notes.append(f"TODO: check the booking answer holds the new id at {book.id_path} "
                              "(guessed from the cancel's argument)")
    auth, auth_notes = _auth(doc, postgrest)
    if missing:
        auth_notes.append(f"TODO: not recognised, so left out (never sent): {', '.join(missing)}")
    return Draft(name=name, description=f"from {doc.get('info', {}).get('title', 'an OpenAPI document')}",
                 base_url=base_url, auth=auth, auth_notes=auth_notes, ops=ops,
                 rules=POSTGREST_RULES if postgrest else REST_RULES, source=source, audit=False,
                 pools_notes=["TODO: dataset fits a database seeded by `bookbench db seed`; for your own data use "
                              "inline, csv or sql"])
