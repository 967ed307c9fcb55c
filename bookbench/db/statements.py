"""pg_stat_statements of one database, read only: whether this connection can read it, a snapshot of its counters, the
difference of two snapshots as StatementDeltas, and a readable label for each of the service's own statements
(issue 27, item 1).

Never pg_stat_statements_reset(): the counters of a --dsn database are its operator's, and a difference of two
snapshots needs no reset anywhere. Columns differ between PostgreSQL versions (total_exec_time since 13, before it
total_time; wal_bytes and planning since 13; toplevel since 14; stats_since since 17), so the view's columns are
read first and a missing one is None, never a zero.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass

import asyncpg

from bookbench.artifacts.db_evidence import StatementDelta

# (queryid, toplevel, userid): one entry of pg_stat_statements in one database
Key = tuple[int, bool | None, int]
QUERY_CHARS = 500
NOT_LOADED = ("not measured: pg_stat_statements is not loaded by the server (it needs shared_preload_libraries and "
              "a restart)")


@dataclass(frozen=True)
class Source:
    """What this connection reads pg_stat_statements with."""

    schema: str  # where the extension lives
    version: str
    columns: frozenset[str]
    track: str  # "top" counts only the client's statements; "all" the ones inside functions too
    track_planning: bool
    dbid: int
    userid: int | None  # only this role's statements (a role that may not read the others'), else None: all

    def describe(self) -> str:
        planning = "on" if self.track_planning else "off"
        only = ", this role's statements only" if self.userid is not None else ""
        return f"pg_stat_statements {self.version}, track = {self.track}, track_planning {planning}{only}"


@dataclass(frozen=True)
class Counters:
    calls: int
    total_exec_ms: float
    rows: int
    shared_blks_hit: int
    shared_blks_read: int
    shared_blks_dirtied: int
    temp_blks_read: int
    temp_blks_written: int
    wal_bytes: int | None
    plans: int | None
    total_plan_ms: float | None
    since: float | None  # stats_since (epoch s): another value means the entry was evicted and made again


@dataclass(frozen=True)
class Snapshot:
    taken: float  # epoch s, the middle of the query's round trip
    rows: dict[Key, Counters]


async def probe(conn: asyncpg.Connection, service_role: str | None = None) -> Source | str:
    """How to read pg_stat_statements here, or why it cannot be read ("not measured: ..."). `service_role`: the
    role the service connects as, when known; a role may always read its own statements' text, and another's only
    with pg_read_all_stats (or as a superuser): without it PostgreSQL shows "<insufficient privilege>"."""
    db = await conn.fetchval("SELECT current_database()")
    ext = await conn.fetchrow("SELECT e.extversion, n.nspname FROM pg_extension e "
                              "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements'")
    if ext is None:
        return (f"not measured: the pg_stat_statements extension is not installed in database {db} "
                "(CREATE EXTENSION pg_stat_statements)")
    me = await conn.fetchrow("SELECT current_user AS name, (SELECT oid FROM pg_roles WHERE rolname = current_user) "
                             "AS oid, pg_has_role('pg_read_all_stats', 'USAGE') AS all_stats")
    assert me is not None
    userid: int | None = None
    if not me["all_stats"]:
        if service_role != me["name"]:
            return (f"not measured: role {me['name']} may not read other roles' statements in pg_stat_statements "
                    "(grant it pg_read_all_stats)")
        userid = int(me["oid"])
    relation = f"{quote_ident(ext['nspname'])}.pg_stat_statements"
    columns = frozenset(await conn.fetchval(
        "SELECT array_agg(attname::text) FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 "
        "AND NOT attisdropped", relation) or [])
    try:
        await conn.fetchval(f"SELECT 1 FROM {relation}(false) LIMIT 1")
    except asyncpg.ObjectNotInPrerequisiteStateError:
        return NOT_LOADED
    except asyncpg.InsufficientPrivilegeError as exc:
        return f"not measured: role {me['name']} may not call pg_stat_statements ({exc})"
    track = await conn.fetchval("SELECT current_setting('pg_stat_statements.track', true)") or "top"
    if track == "none":
        return "not measured: pg_stat_statements.track is none on this server (nothing is counted)"
    planning = await conn.fetchval("SELECT current_setting('pg_stat_statements.track_planning', true)") == "on"
    dbid = await conn.fetchval("SELECT oid FROM pg_database WHERE datname = current_database()")
    return Source(ext["nspname"], ext["extversion"], columns, track, planning and "plans" in columns, int(dbid),
                  userid)


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _snapshot_sql(src: Source) -> str:
    c = src.columns

    def have(col: str, expr: str | None = None) -> str:
        return (expr or col) if col in c else "NULL"

    execs = "total_exec_time" if "total_exec_time" in c else "total_time"
    return (f"SELECT queryid, {have('toplevel')} AS toplevel, userid, calls, {execs} AS exec_ms, rows, "
            "shared_blks_hit, shared_blks_read, shared_blks_dirtied, temp_blks_read, temp_blks_written, "
            f"{have('wal_bytes', 'wal_bytes::int8')} AS wal_bytes, "
            f"{have('plans') if src.track_planning else 'NULL'} AS plans, "
            f"{have('total_plan_time') if src.track_planning else 'NULL'} AS plan_ms, "
            f"{have('stats_since', 'extract(epoch FROM stats_since)::float8')} AS since "
            f"FROM {quote_ident(src.schema)}.pg_stat_statements(false) "
            "WHERE dbid = $1 AND queryid IS NOT NULL AND ($2::oid IS NULL OR userid = $2::oid)")


async def snapshot(conn: asyncpg.Connection, src: Source, timeout: float | None = None) -> Snapshot:
    """The counters of every statement of this database (without their text: the text file is read once, at the
    end, by texts())."""
    before = time.time()
    rows = await conn.fetch(_snapshot_sql(src), src.dbid, src.userid, timeout=timeout)
    taken = (before + time.time()) / 2
    out: dict[Key, Counters] = {}
    for r in rows:
        key = (int(r["queryid"]), r["toplevel"], int(r["userid"]))
        out[key] = Counters(
            calls=int(r["calls"]), total_exec_ms=float(r["exec_ms"]), rows=int(r["rows"]),
            shared_blks_hit=int(r["shared_blks_hit"]), shared_blks_read=int(r["shared_blks_read"]),
            shared_blks_dirtied=int(r["shared_blks_dirtied"]), temp_blks_read=int(r["temp_blks_read"]),
            temp_blks_written=int(r["temp_blks_written"]),
            wal_bytes=None if r["wal_bytes"] is None else int(r["wal_bytes"]),
            plans=None if r["plans"] is None else int(r["plans"]),
            total_plan_ms=None if r["plan_ms"] is None else float(r["plan_ms"]),
            since=None if r["since"] is None else float(r["since"]))
    return Snapshot(taken, out)


async def texts(conn: asyncpg.Connection, src: Source, timeout: float | None = None) -> dict[Key, str]:
    """Each statement's normalized text (constants shown as $n), whitespace collapsed (whole: labels may need its
    end; delta() cuts it at QUERY_CHARS)."""
    rows = await conn.fetch(
        f"SELECT queryid, {'toplevel' if 'toplevel' in src.columns else 'NULL'} AS toplevel, userid, query "
        f"FROM {quote_ident(src.schema)}.pg_stat_statements(true) "
        "WHERE dbid = $1 AND queryid IS NOT NULL AND ($2::oid IS NULL OR userid = $2::oid)",
        src.dbid, src.userid, timeout=timeout)
    return {(int(r["queryid"]), r["toplevel"], int(r["userid"])): collapse(r["query"] or "") for r in rows}


def collapse(query: str) -> str:
    """Whitespace collapsed, and a leading "PREPARE name AS" dropped: pg_stat_statements keeps the first text it saw
    for a statement, which for the service's statements is often bookbench's own EXPLAIN set-up (db/evidence.py
    prepares each one), while the service runs the same statement unnamed."""
    return _PREPARED.sub("", " ".join(query.split()), count=1)


_PREPARED = re.compile(r"^PREPARE \S+(?: \([^)]*\))? AS ", re.IGNORECASE)


# a statement whose text was not read at the end: evicted since (pg_stat_statements.max), or the database stopped
_NO_TEXT = "(text not read: evicted from pg_stat_statements, or the database stopped answering)"
_ZERO = Counters(0, 0.0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0, None)


def delta(before: Snapshot, after: Snapshot, text: dict[Key, str]) -> list[StatementDelta]:
    """What each statement cost between the two snapshots, largest total execution time first; statements not run
    in between are left out. An entry evicted and made again in between (pg_stat_statements.max) counts from zero."""
    out: list[StatementDelta] = []
    for key, a in after.rows.items():
        b = before.rows.get(key, _ZERO)
        if a.calls < b.calls or (a.since is not None and b.since is not None and a.since != b.since):
            b = _ZERO
        calls = a.calls - b.calls
        plans = None if a.plans is None else a.plans - (b.plans or 0)
        if calls <= 0 and not plans:
            continue
        query = text.get(key, "")
        name, own = label(query)
        total = a.total_exec_ms - b.total_exec_ms
        out.append(StatementDelta(
            queryid=str(key[0]), label=name, own=own, toplevel=key[1],
            query=query[:QUERY_CHARS] or _NO_TEXT,
            calls=calls, total_exec_ms=round(total, 4), mean_exec_ms=round(total / calls, 4) if calls else 0.0,
            rows=a.rows - b.rows, shared_blks_hit=a.shared_blks_hit - b.shared_blks_hit,
            shared_blks_read=a.shared_blks_read - b.shared_blks_read,
            shared_blks_dirtied=a.shared_blks_dirtied - b.shared_blks_dirtied,
            temp_blks_read=a.temp_blks_read - b.temp_blks_read,
            temp_blks_written=a.temp_blks_written - b.temp_blks_written,
            wal_bytes=None if a.wal_bytes is None else a.wal_bytes - (b.wal_bytes or 0),
            plans=plans,
            total_plan_ms=None if a.total_plan_ms is None else round(a.total_plan_ms - (b.total_plan_ms or 0.0), 4)))
    out.sort(key=lambda s: (-s.total_exec_ms, -s.calls, s.queryid))
    return unique_labels(out)


def unique_labels(statements: list[StatementDelta]) -> list[StatementDelta]:
    """Two different statements with one label (the same text run by two roles, or at top level and inside a
    function) become "label" and "label #2", in the list's order (largest total time first). "other" stays."""
    seen: dict[str, int] = defaultdict(int)
    out = []
    for s in statements:
        if s.own:
            seen[s.label] += 1
            if seen[s.label] > 1:
                s = s.model_copy(update={"label": f"{s.label} #{seen[s.label]}"})
        out.append(s)
    return out


# The service's statements (target_service/queries.py, target_service/notify/) and the statements inside
# book_appointment_atomic (sql/schema/002_booking.sql), told by fragments of their normalized text (lower case,
# whitespace collapsed; constants are $n there, PL/pgSQL variables keep their names). First match wins: the cancel,
# which also queues outbox rows and notifies, before the booking function's own INSERT and pg_notify.
_LABELS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("booking function", ("from book_appointment_atomic(",)),
    ("cancel", ("with c as ( update appointments set status =",)),
    ("conflict check", ("from appointment_conflicts(",)),
    ("advisory lock", ("pg_advisory_xact_lock(", "p_provider_id")),
    ("booking insert", ("insert into appointments (", "p_org_id")),
    ("booking outbox insert", ("insert into notification_outbox", "v_id")),
    ("contact check", ("from contacts c where c.id = p_contact_id and c.org_id = p_org_id",)),
    ("provider check", ("from providers p where p.id = p_provider_id and p.org_id = p_org_id",)),
    ("booking result", ("::text, v_id",)),
    ("notify", ("select pg_notify(",)),
    ("availability", ("from providers p left join appointments a",)),
    ("upcoming lookup", ("from contacts c left join lateral",)),
    ("appointment status", ("select status from appointments where id =",)),
    ("api key lookup", ("from organizations where api_key_hash =",)),
    ("stats (outbox)", ("from notification_outbox group by channel, status",)),
    ("stats (breakers)", ("select provider, state from notification_breaker",)),
    ("outbox claim", ("update notification_outbox set next_attempt_at =", "for update skip locked")),
    ("outbox sent", ("update notification_outbox set status =", "sent_at =")),
    ("outbox retry", ("set attempts = attempts +", "last_error =")),
    ("outbox next due", ("min(next_attempt_at)", "from notification_outbox")),
    ("breaker gate", ("from notification_breaker where provider =", "open_until - clock_timestamp()")),
    ("breaker probe", ("update notification_breaker set state =", "open_until <= clock_timestamp()")),
    ("breaker success", ("with prev as ( select state from notification_breaker",)),
    ("breaker failure", ("set failures = b.failures +",)),
    ("breaker reopen", ("update notification_breaker set state =",)),
)
# statements told by their whole shape: (pattern, label, own)
_SHAPES = (
    # RETURN QUERY SELECT 'slot_taken'::text, NULL::bigint: both constants are $n in the normalized text
    (re.compile(r"^select \$\d+::text, \$\d+::bigint$"), "booking refusal", True),
    # the foreign-key checks PostgreSQL runs for the service's INSERTs (one per referenced table)
    (re.compile(r'^select \$\d+ from only "[^"]+"\."(?P<table>[^"]+)" x where "id" operator\(pg_catalog\.=\) \$\d+ '
                r"for key share of x$"), "foreign key check ({table})", True),
)
# bookbench's own measuring while the load runs (not the service's, but their cost is shown, not hidden)
_MEASURING = (
    ("bookbench: statement snapshots", ("pg_stat_statements(", "exec_ms")),
    ("bookbench: wait sampler", ("from pg_stat_get_activity(",)),
    ("bookbench: notification backlog", ("select count(*) from notification_outbox where appointment_id >",)),
)
_DDL = ("create ", "alter ", "drop ", "do ", "comment ", "grant ", "revoke ", "explain ")


def _squash(text: str) -> str:
    """Lower case, whitespace collapsed, none after an opening parenthesis: how labels compare texts."""
    return re.sub(r"\(\s+", "(", " ".join(text.lower().split()))


_SQUASHED = tuple((name, tuple(_squash(f) for f in fragments)) for name, fragments in _LABELS)
_MEASURING_SQUASHED = tuple((name, tuple(_squash(f) for f in fragments)) for name, fragments in _MEASURING)


def label(query: str) -> tuple[str, bool]:
    """(readable label, whether it is one of the service's own statements); "other" for the rest."""
    text = _squash(query)
    if text.startswith(_DDL):  # CREATE FUNCTION book_appointment_atomic ... holds every fragment of its body
        return "other", False
    for name, fragments in _SQUASHED:
        if all(f in text for f in fragments):
            return name, True
    for pattern, name, own in _SHAPES:
        if found := pattern.match(text):
            return name.format(**found.groupdict()), own
    for name, fragments in _MEASURING_SQUASHED:
        if all(f in text for f in fragments):
            return name, False
    return "other", False
