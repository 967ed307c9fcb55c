"""Strict JSON for request bodies and Vapi string arguments, checked before any validation sees them.

Python's json module accepts what no client of this API sends and what later code cannot handle: NaN and
Infinity (which the error response then cannot serialise back), lone surrogates (which cannot be encoded),
nesting deep enough to exhaust the recursion limit, and integers past the interpreter's 4,300-digit limit.
orjson refuses all of these as it parses; the walk below adds the limits orjson does not have (depth, NUL
characters, which PostgreSQL text cannot store). Both parsers keep the last of two equal keys, so
{"contactId": 1, "contactId": 2} would be read as whatever a proxy or a log reader in front did not: a second,
key-only pass (the standard library's, whose hook sees every pair) refuses duplicated keys.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
from fastapi import Request
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.responses import Response

# The deepest body this API accepts is 7 levels (Vapi envelope -> message -> toolCallList -> call -> function ->
# arguments -> a value); 32 leaves room for the metadata real Vapi envelopes carry.
MAX_DEPTH = 32


class InvalidJSON(HTTPException):
    """A body (or a Vapi `arguments` string) that is not JSON this service accepts: 400, naming where."""

    def __init__(self, detail: str) -> None:
        super().__init__(400, detail=detail)


def loads(raw: bytes | str, what: str = "body") -> Any:
    """The parsed value, or InvalidJSON whose detail starts with `what` ("body", "arguments")."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # exc.msg and the position only: the document itself may hold what cannot be echoed back
        raise InvalidJSON(f"{what} is not valid JSON: {exc.msg} at character {exc.pos}") from None
    _check(value, what)
    if isinstance(value, dict | list):
        _refuse_duplicate_keys(raw, what)
    return value


def _no_value(_: str) -> None:
    return None


def _keys_only(pairs: list[tuple[str, Any]]) -> None:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise InvalidJSON(f"duplicate key {key[:64]!r}")
        seen.add(key)


def _refuse_duplicate_keys(raw: bytes | str, what: str) -> None:
    """Runs only after orjson and _check accepted the document (valid UTF-8, at most MAX_DEPTH deep), so this
    parse can fail only on a duplicated key; numbers are not even converted."""
    try:
        json.loads(raw, object_pairs_hook=_keys_only, parse_int=_no_value, parse_float=_no_value,
                   parse_constant=_no_value)
    except InvalidJSON as exc:
        raise InvalidJSON(f"{what} has a {exc.detail}: each key may appear once per object") from None
    except ValueError as exc:  # not expected after orjson; still a bad body, never a 500
        raise InvalidJSON(f"{what} is not valid JSON: {type(exc).__name__}") from None


def _check(value: Any, what: str) -> None:
    """Iterative, so that the check itself cannot recurse too deep."""
    stack: list[tuple[Any, int, str]] = [(value, 1, what)]
    while stack:
        item, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidJSON(f"nested deeper than {MAX_DEPTH} levels at {where}")
        if isinstance(item, dict):
            for key, child in item.items():
                if "\x00" in key:
                    raise InvalidJSON(f"a key in {where} contains a NUL character")
                stack.append((child, depth + 1, f"{where}.{key[:64]}"))
        elif isinstance(item, list):
            stack.extend((child, depth + 1, f"{where}[{i}]") for i, child in enumerate(item))
        elif isinstance(item, str) and "\x00" in item:
            raise InvalidJSON(f"{where} contains a NUL character")


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """FastAPI reads bodies through Request.json(); this route hands it the strict parser. InvalidJSON is an
    HTTPException, which FastAPI's body reading passes through unchanged (anything else would become a vague 400)."""

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict_handler
