"""Error bodies: always `{"error": <code>, "detail": <text>}` JSON, never the raw input, never a traceback.

FastAPI's default 422 echoes each offending input back; an input the client sent can be exactly what cannot be
serialised (a float the JSON encoder refuses, bytes that are not UTF-8), and then the error path itself fails
with a 500. Here the answer names the field and the problem, and every string in it is made encodable.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from target_service.auth import AmbiguousCredentials
from target_service.strict_json import InvalidJSON

log = logging.getLogger("target_service")

_MAX_TEXT = 200
_MAX_FIELDS = 10


def safe_text(value: object, limit: int = _MAX_TEXT) -> str:
    """Any value as printable, UTF-8-encodable text of bounded length."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) > limit:
        text = text[:limit] + "..."
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def field_name(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(safe_text(part, 64) for part in loc) or "body"


# the code of an HTTP error raised by the framework itself (unknown route, wrong method) or by a guard
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 408: "request_timeout", 413: "body_too_large"}


def error_response(status: int, code: str, detail: str, headers: Mapping[str, str] | None = None,
                   **extra: Any) -> Response:
    body = orjson.dumps({"error": code, "detail": safe_text(detail, 500), **extra})
    headers = dict(headers or {})
    # after a 500 the server drops the connection (the error is re-raised to it): say so, so that a client
    # does not send its next request into a closed keep-alive connection
    if status == 500:
        headers["connection"] = "close"
    return Response(body, status_code=status, media_type="application/json", headers=headers or None)


def misconfiguration(exc: Exception) -> str:
    """The booking function's refusal to run outside READ COMMITTED, with what to change."""
    return (f"{exc}; the database's default_transaction_isolation for this role is not 'read committed' "
            "(ALTER DATABASE ... SET default_transaction_isolation = 'read committed')")


def _validation_failed(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    fields = [{"field": field_name(e.get("loc", ())), "problem": safe_text(e.get("msg", "")),
               "type": safe_text(e.get("type", ""), 64)} for e in errors[:_MAX_FIELDS]]
    first = fields[0] if fields else {"field": "request", "problem": "invalid"}
    return error_response(422, "invalid_request", f"{first['field']}: {first['problem']}", fields=fields)


def _invalid_json(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, InvalidJSON)
    return error_response(400, "invalid_json", str(exc.detail))


def _http_error(_: Request, exc: Exception) -> Response:
    # Starlette's and FastAPI's own {"detail"} answers (401 from auth, 404 for an unknown route, 405, a chunked
    # body's 413) in the documented shape, keeping their headers (WWW-Authenticate, Allow)
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)


def _ambiguous_credentials(_: Request, exc: Exception) -> Response:
    return error_response(400, "ambiguous_credentials",
                          "the request carries more than one Authorization header; send exactly one")


def _unexpected(request: Request, exc: Exception) -> Response:
    # A bug, not bad input: logged with its traceback for the developer, a JSON 500 without one for the client.
    # exc_info=exc, not log.exception(): Starlette runs a plain-function handler in a worker thread, where no
    # exception is being handled, and log.exception() would log "NoneType: None" instead of the traceback.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "the service failed on this request; see its log")


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(InvalidJSON, _invalid_json)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(AmbiguousCredentials, _ambiguous_credentials)
    app.add_exception_handler(Exception, _unexpected)

