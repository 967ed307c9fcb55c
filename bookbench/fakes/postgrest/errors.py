"""PostgREST's error answers: the `{code, message, details, hint}` body and the status each SQLSTATE maps to."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

JSON_TYPE = "application/json; charset=utf-8"


class PgrstError(Exception):
    """An answer PostgREST would give instead of a result; raised anywhere, rendered once by the app."""

    def __init__(self, status: int, code: str, message: str, details: str | None = None, hint: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.hint = hint
        self.headers = headers or {}

    def response(self) -> Response:
        body = {"code": self.code, "details": self.details, "hint": self.hint, "message": self.message}
        # PostgREST names the error in Proxy-Status too, so a proxy log shows it without the body
        headers = {"Proxy-Status": f"PostgREST; error={self.code}", **self.headers}
        return json_response(body, self.status, headers)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, separators=(",", ":")), status, headers, media_type=JSON_TYPE)


def raised(message: str, details: str | None = None) -> PgrstError:
    """A plain `RAISE EXCEPTION` in a function: SQLSTATE P0001, which PostgREST answers with 400."""
    return PgrstError(400, "P0001", message, details)


def sql_error(code: str, message: str, details: str | None = None) -> PgrstError:
    return PgrstError(sql_status(code), code, message, details)


def sql_status(code: str) -> int:
    """PostgREST's SQLSTATE -> HTTP mapping (src/library/PostgREST/Error.hs, mapSQLtoHTTP), the classes we can hit."""
    exact = {"23503": 409, "23505": 409, "25006": 405, "P0001": 400, "42883": 404, "42P01": 404, "42501": 403,
             "57P01": 503}
    if code in exact:
        return exact[code]
    prefixes = {"08": 503, "09": 500, "25": 500, "28": 403, "2D": 500, "40": 500, "53": 503, "54": 500, "55": 500,
                "57": 500, "58": 500, "P0": 500, "XX": 500}
    return prefixes.get(code[:2], 400)


def jwt_error(code: str, message: str) -> PgrstError:
    """PGRST301 (cannot decode) / PGRST302 (no token) / PGRST303 (claims refused): 401 with a WWW-Authenticate."""
    challenge = "Bearer" if code == "PGRST302" else (
        f'Bearer error="invalid_token", error_description={json.dumps(message)}')
    return PgrstError(401, code, message, headers={"WWW-Authenticate": challenge})


def invalid_json() -> PgrstError:
    return PgrstError(400, "PGRST102", "Empty or invalid json")


def parse_error(what: str, text: str, column: int, details: str) -> PgrstError:
    """A query-string parameter PostgREST's parser refuses (PGRST100), worded like its Parsec errors."""
    return PgrstError(400, "PGRST100", f'"failed to parse {what} ({text})" (line 1, column {column})', details)


def undefined_column(table: str, column: str) -> PgrstError:
    return PgrstError(400, "42703", f"column {table}.{column} does not exist")


def permission_denied(kind: str, name: str) -> PgrstError:
    return PgrstError(403, "42501", f"permission denied for {kind} {name}")
