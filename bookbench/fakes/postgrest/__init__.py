"""A PostgREST / Supabase-style booking API over bookbench's schema: a test target of another shape than ours.

Run: ``python -m bookbench.fakes.postgrest --dsn DSN --port PORT [--host 127.0.0.1] [--jwt-secret S]
[--anon-key K] [--token-ttl-s N] [--pool-size N]``; the DSN, secret and key may come from
$BOOKBENCH_POSTGREST_DSN, $BOOKBENCH_POSTGREST_JWT_SECRET, $BOOKBENCH_POSTGREST_ANON_KEY instead.
Defaults: host 127.0.0.1 (a loopback address is required), jwt secret ``DEFAULT_JWT_SECRET``, anon key
``DEFAULT_ANON_KEY``, token lifetime 3600 s, pool 10 connections.

Wire shapes (what PostgREST 12/13 and Supabase answer):

- ``POST /auth/v1/token?grant_type=password`` with header ``apikey`` and ``{"email": "clinic<ORG>@example.test",
  "password": "<the org's API key>"}`` -> 200 ``{"access_token", "token_type": "bearer", "expires_in",
  "expires_at", "refresh_token", "user"}``; wrong credentials -> 400 ``{"code": 400, "error_code":
  "invalid_credentials", "msg": "Invalid login credentials"}``.
- every ``/rest/v1`` request: ``apikey: <anon key>`` (else 401 ``{"message", "hint"}`` as Supabase's gateway) and
  ``Authorization: Bearer <access_token>`` (else 401 PGRST302 / PGRST301 / PGRST303 "JWT expired").
- ``POST /rest/v1/rpc/available_slots`` ``{"p_provider_id", "p_day"}`` -> 200 ``[{"slot_start", "slot_end"}]``.
- ``POST /rest/v1/rpc/book_appointment`` ``{"p_contact_id", "p_provider_id", "p_start", "p_duration_minutes"}``
  -> 200 ``{"booking_ref", "status", "scheduled_at"}``; slot taken -> 409 code 23505.
- ``POST /rest/v1/rpc/cancel_appointment`` ``{"p_booking_ref"}`` -> 204, no body.
- ``GET /rest/v1/appointments?select=...&col=op.value&order=col.asc&limit=n`` -> 200 a JSON array; the same
  grammar reads ``/rest/v1/contacts`` and ``/rest/v1/providers`` (``id``, ``name``), each scoped to the JWT's org.
- ``GET /rest/v1/`` -> the Swagger 2.0 document; ``GET /healthz`` -> 200 (readiness, not PostgREST's).

Errors are ``{"code", "details", "hint", "message"}``: 400 P0001 for a refusal raised by a function, 404 PGRST202
for an unknown function, 404 PGRST205 for an unknown table, 400 PGRST100 for a filter it cannot parse, 400
PGRST102 for a body that is not JSON, 400 22P02 / 22007 for a value of the wrong type.
"""

DEFAULT_JWT_SECRET = "bookbench-postgrest-jwt-secret-0123456789"
DEFAULT_ANON_KEY = "bookbench-anon-key"
DEFAULT_TOKEN_TTL_S = 3600
ENV_DSN = "BOOKBENCH_POSTGREST_DSN"
ENV_JWT_SECRET = "BOOKBENCH_POSTGREST_JWT_SECRET"
ENV_ANON_KEY = "BOOKBENCH_POSTGREST_ANON_KEY"
