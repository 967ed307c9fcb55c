"""HS256 JSON Web Tokens (RFC 7519) with the standard library: signing for the login, checking for every request."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from typing import Any

from bookbench.fakes.postgrest.errors import jwt_error


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def encode(claims: dict[str, Any], secret: str) -> str:
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"


def decode(token: str, secret: str, now: float | None = None) -> dict[str, Any]:
    """The claims of a token signed with `secret` and not expired; else the PGRST30x error PostgREST answers."""
    if not token:
        raise jwt_error("PGRST301", "Empty JWT is sent in Authorization header")
    parts = token.split(".")
    if len(parts) != 3:
        raise jwt_error("PGRST301", f"Expected 3 parts in JWT; got {len(parts)}")
    try:
        header = json.loads(_unb64(parts[0]))
        signature = _unb64(parts[2])
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, binascii.Error):
        raise jwt_error("PGRST301", "JWT couldn't be decoded") from None
    if not isinstance(header, dict) or header.get("alg") != "HS256":
        raise jwt_error("PGRST301", "Wrong or unsupported encoding algorithm")
    expected = hmac.new(secret.encode(), f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        raise jwt_error("PGRST301", "JWT cryptographic operation failed")
    if not isinstance(claims, dict):
        raise jwt_error("PGRST303", "Parsing claims failed")
    exp = claims.get("exp")
    if exp is not None:
        if isinstance(exp, bool) or not isinstance(exp, int | float):
            raise jwt_error("PGRST303", "The JWT 'exp' claim must be a number")
        # PostgREST allows 30 s of clock skew; our tokens come from this process's clock, so none is needed
        if exp <= (time.time() if now is None else now):
            raise jwt_error("PGRST303", "JWT expired")
    return claims


