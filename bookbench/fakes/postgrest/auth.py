"""Supabase-style access: the gateway's `apikey` check, the password login that issues JWTs, the tenant of a JWT."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
from starlette.requests import Request
from starlette.responses import Response

from bookbench.fakes.postgrest import jwt
from bookbench.fakes.postgrest.errors import json_response, jwt_error, permission_denied

EMAIL = re.compile(r"clinic([1-9]\d{0,17})@example\.test", re.IGNORECASE)
ROLE = "authenticated"


@dataclass(frozen=True)
class AuthSettings:
    jwt_secret: str
    anon_key: str
    token_ttl_s: int


class Answer(Exception):
    """A finished answer raised out of a handler: the gateway's and the auth server's refusals, which are not
    PostgREST's `{code, message, details, hint}`."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(str(body))
        self.status = status
        self.body = body

    def response(self) -> Response:
        return json_response(self.body, self.status)


def check_apikey(request: Request, settings: AuthSettings) -> None:
    """What Supabase's API gateway (Kong) does before PostgREST or the auth server sees a request."""
    key = request.headers.get("apikey") or request.query_params.get("apikey")
    if not key:
        raise Answer(401, {"message": "No API key found in request",
                           "hint": "No `apikey` request header or url param was found."})
    if not hmac.compare_digest(key.encode(), settings.anon_key.encode()):
        raise Answer(401, {"message": "Invalid API key",
                           "hint": "Double check your Supabase `anon` or `service_role` API key."})


def tenant(request: Request, settings: AuthSettings, kind: str, name: str) -> int:
    """The organization a request acts for, from its bearer JWT: every query is scoped to it, as RLS would."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        raise jwt_error("PGRST302", "Anonymous access is disabled")
    claims = jwt.decode(token.strip(), settings.jwt_secret)
    org_id = claims.get("org_id")
    # a token of another role, or without a tenant, is a role that was granted nothing here
    if claims.get("role") != ROLE or isinstance(org_id, bool) or not isinstance(org_id, int) or org_id < 1:
        raise permission_denied(kind, name)
    return org_id


def _gotrue_error(error_code: str, message: str) -> Answer:
    return Answer(400, {"code": 400, "error_code": error_code, "msg": message})


async def login(pool: asyncpg.Pool, settings: AuthSettings, grant_type: str | None, body: Any,
                issuer: str) -> dict[str, Any]:
    """POST /auth/v1/token?grant_type=password: the org's email and its API key as password -> an access token."""
    if grant_type != "password":
        raise _gotrue_error("validation_failed", "unsupported_grant_type")
    if not isinstance(body, dict) or not isinstance(body.get("email"), str) or not isinstance(
            body.get("password"), str):
        raise _gotrue_error("validation_failed", "missing email or phone")
    match = EMAIL.fullmatch(body["email"].strip())
    stored = None
    if match is not None:
        stored = await pool.fetchval("SELECT api_key_hash FROM organizations WHERE id = $1", int(match.group(1)))
    # the API key is stored as its sha256 hex, as the reference service checks it (target_service/auth.py)
    given = hashlib.sha256(body["password"].encode()).hexdigest()
    if match is None or stored is None or not hmac.compare_digest(given, stored):
        raise _gotrue_error("invalid_credentials", "Invalid login credentials")
    org_id = int(match.group(1))
    now = int(time.time())
    expires_at = now + settings.token_ttl_s
    email = body["email"].strip().lower()
    user_id = f"org-{org_id}"
    claims = {"aud": ROLE, "exp": expires_at, "iat": now, "iss": issuer, "sub": user_id, "email": email,
              "role": ROLE, "org_id": org_id, "session_id": secrets.token_hex(8)}
    return {
        "access_token": jwt.encode(claims, settings.jwt_secret),
        "token_type": "bearer",
        "expires_in": settings.token_ttl_s,
        "expires_at": expires_at,
        "refresh_token": secrets.token_urlsafe(16),
        "user": {"id": user_id, "aud": ROLE, "role": ROLE, "email": email,
                 "app_metadata": {"provider": "email", "org_id": org_id}},
    }
