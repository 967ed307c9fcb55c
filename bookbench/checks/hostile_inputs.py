"""Hostile requests for every endpoint: hypothesis strategies, and a fixed corpus of inputs that once broke it.

Bodies are built as JSON *text*, not from Python values, so that they can hold what a JSON encoder would never
write but a client can send: NaN and Infinity tokens, 5,000-digit integers, lone surrogates (escaped, or raw and
so invalid UTF-8), nesting thousands deep, truncated documents. Each field of a body is a valid value, a hostile
one, or missing, so that the validation of every field is reached with the others valid.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple, TypeVar
from urllib.parse import quote

from hypothesis import strategies as st

from bookbench.checks.hostile_ids import MAX_ID, NONE_PROVEN, Absent, plausible_id
from bookbench.config.dataset import DatasetParams, api_key

__all__ = ["ENDPOINTS", "MAX_ID", "TOOLS", "Absent", "Layout", "Probe", "corpus", "plausible_id", "strategy"]
TOOLS = ("checkAvailability", "lookupUpcomingAppointment", "bookClinicAppointment", "cancelAppointment")
ENDPOINTS = ("availability", "upcoming", "book", "cancel", *(f"vapi.{t}" for t in TOOLS))

S = st.SearchStrategy
T = TypeVar("T")


@dataclass(frozen=True)
class Probe:
    endpoint: str
    method: str
    path: str  # percent-encoded, query included
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()

    def describe(self, limit: int = 160) -> str:
        body = "" if self.body is None else f" body={self.body[:limit]!r}{'...' if len(self.body) > limit else ''}"
        path = self.path if len(self.path) <= limit else self.path[:limit] + "..."
        return f"{self.method} {path}{body}"


# --- JSON text fragments -----------------------------------------------------------------------------------------

_BOUNDARY_INTS = (0, 1, -1, 4, 5, 29, 31, 240, 241, 2**31 - 1, 2**31, -(2**31) - 1, 2**53 + 1, MAX_ID, MAX_ID + 1,
                  2**64, -(2**63) - 1)
_ODD_NUMBERS = ("NaN", "Infinity", "-Infinity", "1e999", "-1e999", "-0", "0.0", "1e-400", "1.5", "30.0", "1E2",
                "0x10", "01", "+1", ".5", "1.", "- 1", "1.7976931348623157e308")
_SPECIAL_STRINGS = (
    "", " ", "null", "true", "1", "1e5", "-1", "NaN", "1; DROP TABLE appointments; --", "' OR '1'='1",
    "1' OR '1'='1' --", "$1", "%s%s%s%n", "${jndi:ldap://127.0.0.1/x}", "<script>alert(1)</script>",
    "../../etc/passwd", "\x00", "a\x00b", "\u202e", "\ufeff", "\ud800", "\udfff", "\ud83d\ude00", "\U0010ffff",
    "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-23:59", "2026-02-30T10:00:00Z", "2026-13-01T10:00:00Z",
    "2026-01-01T24:00:00Z", "2026-01-01", "10:00", "1970-01-01T00:00:00Z", "+275760-09-13T00:00:00Z",
    "2026-01-01T10:00:00+99:99", "0", "9999-12-31", "0001-01-01", "2026-W01-1", "tomorrow",
)
# all of Unicode (surrogates included, rarely drawn), then the characters that matter spliced in on purpose
_TEXT = st.text(st.characters(exclude_categories=()), max_size=12)
_SPLICED = st.builds(lambda a, c, b: a + c + b, _TEXT, st.sampled_from("\x00\ud800\udfff\n\"\\'\u202e"), _TEXT)
# long strings: past every column width, and (70,000) past the 64 KiB body limit
_LONG = st.sampled_from((101, 201, 1_000, 10_000, 70_000)).map(lambda n: "a" * n)
RAW_TEXT: S[str] = st.one_of(_TEXT, _SPLICED, st.sampled_from(_SPECIAL_STRINGS), _LONG)
# URLs stay under the client's 64 KiB limit; the server's own limit on a request line is what is tested
URL_TEXT: S[str] = st.one_of(_TEXT, _SPLICED, st.sampled_from(_SPECIAL_STRINGS),
                             st.sampled_from((101, 1_000, 10_000)).map(lambda n: "a" * n))
NUMBER: S[str] = st.one_of(
    st.sampled_from(_BOUNDARY_INTS).map(str),
    st.integers().map(str),
    st.sampled_from((20, 310, 4_300, 4_301, 6_000)).map(lambda n: "9" * n),  # 4,300: Python's int limit
    st.sampled_from(_ODD_NUMBERS),
    st.floats().map(json.dumps),  # json.dumps writes NaN / Infinity tokens for non-finite floats
)
# ensure_ascii=False leaves a lone surrogate raw: encoded below with surrogatepass, it is invalid UTF-8
STRING: S[str] = st.one_of(RAW_TEXT.map(json.dumps), RAW_TEXT.map(lambda s: json.dumps(s, ensure_ascii=False)))
SCALAR: S[str] = st.one_of(NUMBER, STRING, st.sampled_from(("true", "false", "null")))


def _array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"


# two levels of containers are enough here (DEEP covers depth) and cost a fraction of st.recursive's time
_CONTAINER = st.one_of(st.lists(SCALAR, max_size=3).map(_array),
                       st.lists(st.tuples(STRING, SCALAR), max_size=3).map(_object))
VALUE: S[str] = st.one_of(SCALAR, SCALAR, _CONTAINER, st.lists(_CONTAINER, max_size=2).map(_array))
DEEP: S[str] = st.tuples(st.sampled_from((31, 32, 33, 1_000, 5_000)), st.booleans()).map(
    lambda t: "[" * t[0] + "]" * t[0] if t[1] else '{"a":' * t[0] + "1" + "}" * t[0])
GARBAGE: S[bytes] = st.one_of(st.binary(max_size=200), st.sampled_from((b"", b" ", b"{", b'{"contactId":', b"\xff")))


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def mostly(usual: S[T], other: S[T], tenths: int = 8) -> S[T]:
    """`usual` in `tenths` draws of ten, else `other`. (st.one_of does not weight its branches evenly, and one
    hostile part per request is enough: the rest must usually be valid for that part's check to be reached.)"""
    return st.integers(0, 9).flatmap(lambda i: usual if i < tenths else other)


class Field(NamedTuple):
    valid: S[str]
    hostile: S[str] = VALUE


def _field(field: Field) -> S[str | None]:
    return mostly(field.valid, st.one_of(field.hostile, st.none()))


def _pair(key: str) -> Callable[[str | None], str | None]:
    return lambda value: None if value is None else f'"{key}":{value}'


def record(fields: dict[str, Field]) -> S[str]:
    """A JSON object text with the given fields (each valid, hostile or missing) and sometimes unknown keys."""
    parts = [_field(field).map(_pair(key)) for key, field in fields.items()]
    extra = mostly(st.just([]), st.tuples(STRING, SCALAR).map(lambda kv: [f"{kv[0]}:{kv[1]}"]), tenths=9)
    return st.tuples(st.tuples(*parts), extra).map(
        lambda t: "{" + ",".join([p for p in t[0] if p is not None] + t[1]) + "}")


def body(fields: dict[str, Field]) -> S[bytes]:
    return mostly(record(fields).map(encode), st.one_of(VALUE.map(encode), DEEP.map(encode), GARBAGE))


def segment(valid: S[int] | None, real_ids: bool = True) -> S[str]:
    """A path segment: a valid id, or any number or text, percent-encoded (raw surrogates become invalid UTF-8).
    Without real ids, nothing that could name an existing row except the valid ids (then proven absent)."""
    hostile = st.one_of(NUMBER, URL_TEXT)
    if not real_ids:
        hostile = hostile.filter(lambda s: not plausible_id(s))
    raw = hostile if valid is None else mostly(valid.map(str), hostile)
    return raw.map(lambda s: quote(encode(s), safe=""))


# --- the endpoints -------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Layout:
    """Which ids the probes use. On a scratch database, real ones (bookings and cancels happen and are
    accounted for); on someone's deployment only ids a read there proved absent (`absent`; none of a kind: that
    kind's valid branch is not drawn), and no hostile value that could be read as any other id, so that no real
    row is touched. (Any valid bigint can exist: ids near 2^63 are not "impossible".)"""

    params: DatasetParams
    real_ids: bool
    absent: Absent = NONE_PROVEN

    def key_orgs(self) -> tuple[int, ...]:
        """The orgs whose keys the probes send (a valid key, another tenant's): absence is proven for each."""
        return tuple(sorted({1, min(2, self.params.orgs)}))

    def ids(self, kind: str) -> S[int] | None:
        if not self.real_ids:
            proven = self.absent.of(kind)
            return st.sampled_from(proven) if proven else None
        if kind == "contact":
            return st.sampled_from(list(self.params.contacts_of(1)[:50]))
        if kind == "provider":
            return st.sampled_from(list(self.params.providers_of(1)))
        return st.integers(1, max(1, self.params.appointments))

    def id_field(self, kind: str) -> Field:
        ids = self.ids(kind)
        hostile = VALUE if self.real_ids else VALUE.filter(lambda t: not plausible_id(t))
        if ids is None:
            return Field(hostile, hostile)
        return Field(mostly(ids.map(str), ids.map(lambda i: f'"{i}"'), tenths=9), hostile)

    def placeholder(self, kind: str) -> int:
        """One id of this kind for the fixed corpus: a real one, a proven-absent one, or 0 (refused by any
        validation, so nothing is named)."""
        if self.real_ids:
            return (self.params.contacts_of(1) if kind == "contact" else self.params.providers_of(1))[0]
        return next(iter(self.absent.of(kind)), 0)

    def segment(self, kind: str) -> S[str]:
        return segment(self.ids(kind), self.real_ids)

    def headers(self) -> S[tuple[tuple[str, str], ...]]:
        key = api_key(1, self.params.key_secret)
        other = api_key(min(2, self.params.orgs), self.params.key_secret)
        wrong = st.one_of(st.sampled_from(
            (f"Bearer {other}", f"bearer {key}", f"Bearer  {key}", "Bearer", "", f"Basic {key}", "Bearer x" * 50)),
            st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60))
        auth = mostly(st.just(f"Bearer {key}"), wrong, tenths=9)
        ctype = mostly(st.just("application/json"), st.sampled_from(
            ("text/plain", "application/x-www-form-urlencoded", "application/json; charset=utf-16",
             "application/problem+json", "multipart/form-data; boundary=x", "")), tenths=9)
        # stripped: HTTP clients refuse to send a header value with surrounding whitespace at all
        return st.tuples(auth, ctype).map(lambda h: (("Authorization", h[0].strip()), ("Content-Type", h[1])))


def _future_start() -> S[str]:
    today = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    return st.builds(
        lambda d, h, m, tz: f'"{(today + dt.timedelta(days=d)).replace(hour=h, minute=m).isoformat()[:19]}{tz}"',
        st.integers(1, 700), st.integers(0, 23), st.sampled_from((0, 15, 30)),
        st.sampled_from(("Z", "+00:00", "+05:30", "-08:00", "")))


def _date() -> S[str]:
    return st.integers(-400, 800).map(lambda d: (dt.date.today() + dt.timedelta(days=d)).isoformat())


def _args(layout: Layout, tool: str) -> dict[str, Field]:
    if tool in ("book", "bookClinicAppointment"):
        return {"contactId": layout.id_field("contact"), "providerId": layout.id_field("provider"),
                "start": Field(_future_start()), "durationMinutes": Field(st.sampled_from(("5", "30", "60", "240")))}
    if tool == "checkAvailability":
        return {"providerId": layout.id_field("provider"), "date": Field(_date().map(json.dumps))}
    if tool == "lookupUpcomingAppointment":
        return {"contactId": layout.id_field("contact")}
    return {"appointmentId": layout.id_field("appointment")}


def _envelope(layout: Layout, tool: str) -> S[bytes]:
    args = record(_args(layout, tool))
    call = st.builds(
        lambda cid, name, a: f'{{"id":{cid},"type":"function","function":{{"name":{name},"arguments":{a}}}}}',
        mostly(st.just('"call_1"'), st.one_of(STRING, VALUE), tenths=9),
        mostly(st.just(json.dumps(tool)), st.one_of(STRING, VALUE), tenths=9),
        mostly(st.one_of(args, args.map(json.dumps)), st.one_of(STRING, VALUE), tenths=9))
    # 0 and 21 calls: outside the envelope's 1-20
    calls = mostly(st.lists(call, min_size=1, max_size=2), st.one_of(st.just([]), call.map(lambda c: [c] * 21)),
                   tenths=9)
    envelope = calls.map(lambda cs: '{"message":{"type":"tool-calls","toolCallList":' + _array(cs) + "}}")
    return mostly(envelope.map(encode), body({"message": Field(VALUE)}), tenths=9)


def strategy(layout: Layout, endpoint: str) -> S[Probe]:
    """Every request this strategy draws targets `endpoint`'s route (see ENDPOINTS)."""
    headers = layout.headers()
    make: Callable[..., Probe]
    if endpoint == "availability":
        query = mostly(_date(), st.one_of(URL_TEXT, NUMBER)).map(lambda s: "date=" + quote(encode(s), safe=""))
        extra = st.sampled_from(("", "", "&date=2026-01-01", "&providerId=1", "&date", "&%ff=1"))
        return st.builds(lambda p, q, x, h: Probe(endpoint, "GET", f"/api/v1/providers/{p}/availability?{q}{x}",
                                                  None, h),
                         layout.segment("provider"), st.one_of(query, query, st.just("")), extra, headers)
    if endpoint == "upcoming":
        return st.builds(lambda c, h: Probe(endpoint, "GET", f"/api/v1/contacts/{c}/appointments/upcoming", None, h),
                         layout.segment("contact"), headers)
    if endpoint == "book":
        make = lambda b, h: Probe(endpoint, "POST", "/api/v1/appointments", b, h)  # noqa: E731
        return st.builds(make, body(_args(layout, "book")), headers)
    if endpoint == "cancel":
        return st.builds(lambda a, b, h: Probe(endpoint, "POST", f"/api/v1/appointments/{a}/cancel", b, h),
                         layout.segment("appointment"), st.one_of(st.none(), GARBAGE, VALUE.map(encode)),
                         headers)
    tool = endpoint.removeprefix("vapi.")
    if tool not in TOOLS:
        raise KeyError(f"unknown endpoint {endpoint!r}; known: {', '.join(ENDPOINTS)}")
    name = mostly(st.just(tool), URL_TEXT.map(lambda s: quote(encode(s), safe="")), tenths=9)
    return st.builds(lambda n, b, h: Probe(endpoint, "POST", f"/api/vapi/tools/{n}", b, h),
                     name, _envelope(layout, tool), headers)


# --- the fixed corpus: each of these once reached a 500 -----------------------------------------------------------

def _vapi(tool: str, arguments: str) -> bytes:
    return encode('{"message":{"type":"tool-calls","toolCallList":[{"id":"c1","type":"function","function":'
                  f'{{"name":"{tool}","arguments":{arguments}}}}}]}}}}')


def corpus(layout: Layout) -> list[tuple[str, Probe]]:
    """(name, probe) pairs; every one must get a 4xx, or a 200 with a per-call error for a Vapi envelope."""
    params = layout.params
    headers = (("Authorization", f"Bearer {api_key(1, params.key_secret)}"), ("Content-Type", "application/json"))
    # a real contact and provider make every other field's check reachable; on a deployment, ids proven absent
    c, p = layout.placeholder("contact"), layout.placeholder("provider")
    start = (dt.datetime.now(dt.UTC) + dt.timedelta(days=400)).replace(hour=10, minute=0, second=0, microsecond=0)
    good = {"contactId": str(c), "providerId": str(p), "start": json.dumps(start.isoformat()), "durationMinutes": "30"}

    def booking(**override: str) -> bytes:
        return encode(_object([(json.dumps(k), v) for k, v in {**good, **override}.items()]))

    values = {
        "NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity", "1e999": "1e999",
        "5000-digit integer": "9" * 5000, "lone surrogate": '"\\ud800"', "raw surrogate": '"\ud800"',
        "NUL": '"\\u0000"', "max float": "1.7976931348623157e308",
    }
    cases: list[tuple[str, Probe]] = []
    for label, value in values.items():
        cases.append((f"book: contactId {label}", Probe("book", "POST", "/api/v1/appointments",
                                                        booking(contactId=value), headers)))
        cases.append((f"book: durationMinutes {label}", Probe("book", "POST", "/api/v1/appointments",
                                                              booking(durationMinutes=value), headers)))
        args = _object([('"contactId"', value)])
        cases.append((f"vapi: argument {label}", Probe("vapi.lookupUpcomingAppointment", "POST",
                                                       "/api/vapi/tools/lookupUpcomingAppointment",
                                                       _vapi("lookupUpcomingAppointment", args), headers)))
        cases.append((f"vapi: string argument {label}", Probe(
            "vapi.lookupUpcomingAppointment", "POST", "/api/vapi/tools/lookupUpcomingAppointment",
            _vapi("lookupUpcomingAppointment", json.dumps(args)), headers)))
    deep_object, deep_array = '{"a":' * 5000 + "1" + "}" * 5000, "[" * 5000 + "]" * 5000
    for label, raw in {
        "nested 5000 deep (object)": encode(deep_object), "nested 5000 deep (array)": encode(deep_array),
        "surrogate as a key": encode('{"\\ud800": 1}'), "invalid UTF-8": b'{"contactId": "\xff\xfe"}',
        "not an object": b"[1, 2]", "a string": b'"hello"', "null": b"null", "empty": b"",
        "truncated": encode(f'{{"contactId": {c}'),
        "start before year 1 in UTC": booking(start='"0001-01-01T00:00:00+14:00"'),
        "start past year 9999 in UTC": booking(start='"9999-12-31T23:59:59-23:59"'),
        "start as a huge timestamp": booking(start="1e20"), "unknown key with a surrogate": booking(
            **{"\ud800x": "1"}),
    }.items():
        cases.append((f"book: {label}", Probe("book", "POST", "/api/v1/appointments", raw, headers)))
    cases.append(("vapi: string arguments nested 5000 deep", Probe(
        "vapi.bookClinicAppointment", "POST", "/api/vapi/tools/bookClinicAppointment",
        _vapi("bookClinicAppointment", json.dumps(deep_array)), headers)))
    cases.append(("vapi: 1000 tool calls", Probe(
        "vapi.checkAvailability", "POST", "/api/vapi/tools/checkAvailability",
        encode('{"message":{"toolCallList":' + _array(['{"id":"c","function":{"name":"checkAvailability"}}'] * 1000)
               + "}}"), headers)))
    for label, seg in {"5000-digit id": "9" * 5000, "surrogate id": "%ED%A0%80", "NaN id": "NaN",
                       "negative id": "-1", "id past bigint": str(MAX_ID + 1)}.items():
        cases.append((f"upcoming: {label}", Probe("upcoming", "GET", f"/api/v1/contacts/{seg}/appointments/upcoming",
                                                  None, headers)))
        cases.append((f"cancel: {label}", Probe("cancel", "POST", f"/api/v1/appointments/{seg}/cancel", None,
                                                headers)))
    for label, date in {"surrogate date": "%ED%A0%80", "date 0": "0", "date 5000 digits": "9" * 5000,
                        "date 0001-01-01": "0001-01-01", "date 9999-12-31": "9999-12-31",
                        "date with NUL": "2026-01-01%00"}.items():
        cases.append((f"availability: {label}", Probe("availability", "GET",
                                                      f"/api/v1/providers/{p}/availability?date={date}", None,
                                                      headers)))
    return cases
