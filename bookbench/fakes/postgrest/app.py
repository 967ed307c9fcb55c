"""The Starlette app: Supabase's /auth/v1 login and PostgREST's /rest/v1 (functions, table reads, the root doc)."""

from __future__ import annotations

import difflib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bookbench.fakes.postgrest import auth, filters, openapi, rpc
from bookbench.fakes.postgrest.auth import Answer, AuthSettings
from bookbench.fakes.postgrest.casts import iso
from bookbench.fakes.postgrest.errors import PgrstError, invalid_json, json_response, permission_denied, sql_error

log = logging.getLogger("bookbench.fakes.postgrest")

SINGULAR = "application/vnd.pgrst.object+json"
# like the reference service: no query runs longer than this, nor waits longer for a connection
STATEMENT_TIMEOUT_MS = 5000
ACQUIRE_TIMEOUT_S = 5.0

APPOINTMENTS = filters.Table(
    name="appointments",
    columns={
        "booking_ref": filters.Column(f"('{rpc.REF_PREFIX}' || lpad(a.id::text, 9, '0'))", "text"),
        "contact_id": filters.Column("a.contact_id", "bigint"),
        "provider_id": filters.Column("a.provider_id", "bigint"),
        "scheduled_at": filters.Column("a.scheduled_at", "timestamp with time zone"),
        "duration_minutes": filters.Column("a.duration_minutes", "integer"),
        "status": filters.Column("a.status", "text"),
    },
    policy="a.org_id = $1",
    source="appointments a",
)
# the clinic's patients and practitioners, read-only like appointments and scoped to the token's org: what a
# client lists to learn which ids it may book with (a profile's `pools.source: call`)
CONTACTS = filters.Table(
    name="contacts",
    columns={"id": filters.Column("c.id", "bigint"), "name": filters.Column("c.name", "text")},
    policy="c.org_id = $1",
    source="contacts c",
)
PROVIDERS = filters.Table(
    name="providers",
    columns={"id": filters.Column("p.id", "bigint"), "name": filters.Column("p.name", "text")},
    policy="p.org_id = $1",
    source="providers p",
)
TABLES = {t.name: t for t in (APPOINTMENTS, CONTACTS, PROVIDERS)}


@dataclass(frozen=True)
class Settings:
    dsn: str
    auth: AuthSettings
    pool_size: int = 10


def _jsonable(value: Any) -> Any:
    return iso(value) if hasattr(value, "astimezone") else value


def _body_json(raw: bytes) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(constant)  # NaN / Infinity are not JSON

    try:
        return json.loads(raw, parse_constant=refuse)
    except (ValueError, UnicodeDecodeError):
        raise invalid_json() from None


def _singular_or_list(request: Request, rows: list[Any]) -> Response:
    headers = {"Content-Range": f"0-{len(rows) - 1}/*" if rows else "*/*"}
    if SINGULAR in request.headers.get("accept", ""):
        if len(rows) != 1:
            raise PgrstError(406, "PGRST116", "Cannot coerce the result to a single JSON object",
                             f"The result contains {len(rows)} rows")
        return json_response(rows[0], headers=headers)
    return json_response(rows, headers=headers)


def create_app(settings: Settings) -> Starlette:
    state: dict[str, asyncpg.Pool] = {}

    def pool() -> asyncpg.Pool:
        return state["pool"]

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        state["pool"] = await asyncpg.create_pool(
            settings.dsn, min_size=1, max_size=settings.pool_size,
            server_settings={"application_name": "bookbench-postgrest", "TimeZone": "UTC",
                             "statement_timeout": str(STATEMENT_TIMEOUT_MS)})
        try:
            yield
        finally:
            await state["pool"].close()

    def answering(handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """Every refusal as its wire answer; a database error as PostgREST maps its SQLSTATE; nothing else 500s."""

        async def wrapped(request: Request) -> Response:
            try:
                return await handler(request)
            except (PgrstError, Answer) as exc:
                return exc.response()
            except asyncpg.PostgresError as exc:
                code = str(exc.sqlstate or "XX000")
                error = sql_error(code, str(getattr(exc, "message", exc)), getattr(exc, "detail", None))
                error.hint = getattr(exc, "hint", None)
                return error.response()
            except TimeoutError:
                return PgrstError(504, "PGRST003", "Timed out acquiring connection from connection pool.").response()
            except (OSError, asyncpg.InterfaceError) as exc:
                log.warning("database unreachable: %s", exc)
                return PgrstError(503, "PGRST000", "Database connection error. Retrying the connection.",
                                  str(exc)).response()

        return wrapped

    async def healthz(_: Request) -> Response:
        await pool().fetchval("SELECT 1", timeout=ACQUIRE_TIMEOUT_S)
        return json_response({"status": "ok"})

    async def token(request: Request) -> Response:
        auth.check_apikey(request, settings.auth)
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except (ValueError, UnicodeDecodeError):
            raise Answer(400, {"code": 400, "error_code": "bad_json",
                               "msg": "Could not parse request body as JSON"}) from None
        issuer = f"{request.url.scheme}://{request.url.netloc}/auth/v1"
        answer = await auth.login(pool(), settings.auth, request.query_params.get("grant_type"), body, issuer)
        return json_response(answer)

    async def root(request: Request) -> Response:
        auth.check_apikey(request, settings.auth)
        return json_response(openapi.document(list(TABLES.values()), request.url.netloc),
                             headers={"Content-Type": "application/openapi+json; charset=utf-8"})

    async def call(request: Request) -> Response:
        name = request.path_params["name"]
        auth.check_apikey(request, settings.auth)
        if request.method != "POST":
            raise PgrstError(405, "PGRST101", f"Cannot use the {request.method} method on RPC")
        org_id = auth.tenant(request, settings.auth, "function", name)
        raw = await request.body()
        body = _body_json(raw) if raw.strip() else {}
        if not isinstance(body, dict):
            raise invalid_json()  # a bulk call (an array of argument objects) is not supported here
        function, args = rpc.resolve(name, body)
        async with pool().acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            result = await function.body(conn, org_id, args)
        if result is None:
            return Response(status_code=204)  # a function returning void: no body at all
        if isinstance(result, list):
            return _singular_or_list(request, result)
        return json_response(result)

    async def table(request: Request) -> Response:
        name = request.path_params["name"]
        auth.check_apikey(request, settings.auth)
        org_id = auth.tenant(request, settings.auth, "table", name)
        found = TABLES.get(name)
        if found is None:
            near = difflib.get_close_matches(name, list(TABLES), n=1)
            raise PgrstError(404, "PGRST205", f"Could not find the table 'public.{name}' in the schema cache",
                             hint=f"Perhaps you meant the table 'public.{near[0]}'" if near else None)
        if request.method not in ("GET", "HEAD"):
            raise permission_denied("table", name)  # the authenticated role was granted SELECT only
        # Supabase's gateway also takes the apikey as a query parameter; it is not a filter
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "apikey"]
        query = filters.parse(found, params)
        async with pool().acquire(timeout=ACQUIRE_TIMEOUT_S) as conn:
            records = await conn.fetch(query.sql(found), org_id, *query.args)
        rows = [{key: _jsonable(value) for key, value in record.items()} for record in records]
        return _singular_or_list(request, rows)

    methods = ["GET", "POST", "PATCH", "PUT", "DELETE"]
    return Starlette(routes=[
        Route("/healthz", answering(healthz), methods=["GET"]),
        Route("/auth/v1/token", answering(token), methods=["POST"]),
        Route("/rest/v1/", answering(root), methods=["GET"]),
        Route("/rest/v1/rpc/{name}", answering(call), methods=methods),
        Route("/rest/v1/{name}", answering(table), methods=methods),
    ], lifespan=lifespan)
