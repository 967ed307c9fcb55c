"""`python -m bookbench.fakes.postgrest --dsn DSN --port PORT`: the PostgREST-style API under uvicorn, loopback only."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

import uvicorn

from bookbench.fakes.postgrest import (
    DEFAULT_ANON_KEY,
    DEFAULT_JWT_SECRET,
    DEFAULT_TOKEN_TTL_S,
    ENV_ANON_KEY,
    ENV_DSN,
    ENV_JWT_SECRET,
)
from bookbench.fakes.postgrest.app import Settings, create_app
from bookbench.fakes.postgrest.auth import AuthSettings


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bookbench.fakes.postgrest", description=__doc__)
    env = os.environ
    # each secret may come from the environment instead, so that it does not show in the process list
    parser.add_argument("--dsn", default=env.get(ENV_DSN),
                        help=f"PostgreSQL with bookbench's schema and a seeded dataset (or ${ENV_DSN})")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1", help="a loopback address (default 127.0.0.1)")
    parser.add_argument("--jwt-secret", default=env.get(ENV_JWT_SECRET, DEFAULT_JWT_SECRET),
                        help=f"HS256 secret of the access tokens (or ${ENV_JWT_SECRET})")
    parser.add_argument("--anon-key", default=env.get(ENV_ANON_KEY, DEFAULT_ANON_KEY),
                        help=f"the value every request's apikey must have (or ${ENV_ANON_KEY})")
    parser.add_argument("--token-ttl-s", type=int, default=DEFAULT_TOKEN_TTL_S, help="access token lifetime")
    parser.add_argument("--pool-size", type=int, default=10, help="database connections")
    args = parser.parse_args(argv)
    if not args.dsn:
        parser.error(f"--dsn (or ${ENV_DSN}) is required")
    # a test target with well-known default secrets: never reachable from another machine
    if not _loopback(args.host):
        parser.error(f"--host {args.host} is not a loopback address; this test target binds loopback only")
    if args.token_ttl_s < 1 or args.pool_size < 1:
        parser.error("--token-ttl-s and --pool-size must be >= 1")
    settings = Settings(args.dsn, AuthSettings(args.jwt_secret, args.anon_key, args.token_ttl_s), args.pool_size)
    uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
