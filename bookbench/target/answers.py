"""Reading an answer: a profile's rules, in order, turn (status, headers, body) into one typed outcome; an answer
no rule matches is `unclassified`, counted and shown, never hidden among errors."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from bookbench.target.profile import Answer, IdRule, When

_MISSING = object()


@dataclass(frozen=True)
class Outcome:
    """What one call came to: ok, booked (with the id), slot_taken, not_found, refused (with a reason), error
    (no answer, or a 5xx a rule named), or unclassified (no rule matched)."""

    kind: str
    status: int
    appointment_id: int | str | None = None
    reason: str = ""

    def describe(self) -> str:
        what = f"{self.kind} (HTTP {self.status})" if self.status else self.kind
        if self.appointment_id is not None:
            what += f" id {self.appointment_id}"
        return f"{what}: {self.reason}" if self.reason else what


def json_path(doc: Any, path: str) -> Any:
    """`a.b.0.c` in a decoded JSON document; _MISSING when any step is absent."""
    node = doc
    for step in path.split(".") if path else []:
        if isinstance(node, dict):
            node = node.get(step, _MISSING)
        elif isinstance(node, list) and step.lstrip("-").isdigit() and -len(node) <= int(step) < len(node):
            node = node[int(step)]
        else:
            return _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def present(value: Any) -> bool:
    return value is not _MISSING and value is not None


def decode(body: bytes) -> Any:
    """The body as JSON, _MISSING when it is empty or not JSON (a rule on a path then never matches)."""
    if not body:
        return _MISSING
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _MISSING


def _holds(when: When, status: int, body: bytes, doc: Any) -> bool:
    if when.status is not None and status not in when.status:
        return False
    if when.empty_body is not None and (not body.strip()) != when.empty_body:
        return False
    for path, expected in (when.json_equals or {}).items():
        if json_path(doc, path) != expected:
            return False
    if any(not present(json_path(doc, p)) for p in when.json_exists or []):
        return False
    if any(present(json_path(doc, p)) for p in when.json_missing or []):
        return False
    for path, pattern in (when.matches or {}).items():
        value = json_path(doc, path)
        if not present(value) or re.search(pattern, str(value)) is None:
            return False
    return True


def _id(rule: IdRule, doc: Any, headers: dict[str, str]) -> int | str | None:
    raw: Any = headers.get(rule.header.lower()) if rule.header else json_path(doc, rule.path or "")
    if not present(raw):
        return None
    text = str(raw)
    if rule.regex is not None:
        found = re.search(rule.regex, text)
        if found is None:
            return None
        text = found.group(1)
    if rule.as_int:
        try:
            return int(text)
        except ValueError:
            return None
    return text


def classify(answers: list[Answer], status: int, headers: dict[str, str], body: bytes) -> Outcome:
    """The first rule that holds decides; a booked answer whose id cannot be read is unclassified (the rule and
    the answer disagree, and an id bookbench cannot name is a booking it cannot reconcile)."""
    doc = decode(body) if any(a.when.json_equals or a.when.json_exists or a.when.json_missing or a.when.matches
                              or a.id or a.reason for a in answers) else _MISSING
    for answer in answers:
        if not _holds(answer.when, status, body, doc):
            continue
        if answer.outcome == "booked":
            assert answer.id is not None  # the model requires it
            appt = _id(answer.id, doc, headers)
            if appt is None:
                return Outcome("unclassified", status, reason="a booked answer without a readable id")
            return Outcome("booked", status, appt)
        reason = ""
        if answer.reason:
            value = json_path(doc, answer.reason)
            reason = str(value)[:200] if present(value) else ""
        return Outcome(answer.outcome, status, reason=reason)
    return Outcome("unclassified", status, reason=body[:120].decode("utf-8", "replace"))
