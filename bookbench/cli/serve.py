"""`bookbench serve`: the reference service on 127.0.0.1 until Ctrl-C or SIGTERM."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from bookbench.cli.common import (
    AllowRemoteOpt,
    DataDirOpt,
    DsnOpt,
    KeySecretOpt,
    console,
    guard_dsn,
    handle_errors,
    stop_on_signals,
)
from bookbench.config.dataset import DEFAULT_KEY_SECRET, api_key

if TYPE_CHECKING:
    import asyncpg


@handle_errors
def serve(
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="uvicorn worker processes")] = 1,
    dispatchers: Annotated[int, typer.Option(
        "--dispatchers", min=0, max=16, help="notification dispatchers beside the service, delivering to bookbench's "
        "fake SMS and calendar providers (0: none; the outbox then only fills)")] = 1,
    org: Annotated[int | None, typer.Option(
        "--org", min=1, help="whose API key to print (default: the dataset's first org)")] = None,
    key_secret: KeySecretOpt = DEFAULT_KEY_SECRET,
    dsn: DsnOpt = None, data_dir: DataDirOpt = None, allow_remote: AllowRemoteOpt = False,
) -> None:
    """Run the reference service on 127.0.0.1 until Ctrl-C or SIGTERM (embedded database unless --dsn), with its
    notification dispatchers and the fake providers; Ctrl-C or SIGTERM stops them all and, if this command started
    it, the embedded server."""
    import tempfile
    from contextlib import ExitStack

    from bookbench.db.conn import run_with
    from bookbench.db.schema import apply_schema
    from bookbench.pipeline.notify import notify_stack
    from bookbench.pipeline.stack import ServiceProcess, database

    dsn = guard_dsn(dsn, allow_remote)  # before anything connects: the schema is applied there
    stop_on_signals()  # SIGTERM (docker stop, CI cancel, timeout) unwinds like Ctrl-C: nothing is left running
    with database(dsn, data_dir) as url, ExitStack() as stack:
        run_with(url, apply_schema)
        orgs = run_with(url, lambda conn: _orgs(conn, org))
        proc = ServiceProcess(url, port=port, workers=workers, inherit_output=True)
        stack.callback(proc.stop)
        proc.start()
        console.print(f"serving on {proc.base_url} (OpenAPI: {proc.base_url}/docs); Ctrl-C stops")
        # markup off: a key or a secret is printed as it is
        console.print(key_line(orgs, key_secret, console.is_terminal), markup=False)
        notify = None
        reported: dict[str, int] = {}  # parts that exited, reported once each
        if dispatchers:
            # not a TemporaryDirectory: a log that a message names must still be there when the user looks, so the
            # folder goes only when nothing failed
            folder = Path(tempfile.mkdtemp(prefix="bookbench-serve-"))
            stack.push(lambda kind, *_: _drop_unless_needed(folder, bool(reported) or _failure(kind)))
            notify = stack.enter_context(notify_stack(url, dispatchers, folder / "logs", folder))
            console.print(f"notifications: {dispatchers} dispatcher(s); fake SMS gateway {notify.url('sms')}, fake "
                          f"calendar {notify.url('calendar')} (received messages: {folder}/received_*.jsonl, "
                          f"logs: {folder}/logs)")
        while proc.alive():
            # a notification part that dies stops notifications, never the booking API
            for name, code in (notify.exited() if notify is not None else {}).items():
                if name not in reported and notify is not None:
                    reported[name] = code
                    console.print(f"[red]{name} exited with code {code}[/] (log: {notify.log_file(name)}); the "
                                  "booking API keeps serving, notifications may stay queued in the outbox")
            time.sleep(0.5)


def _failure(kind: type[BaseException] | None) -> bool:
    # Ctrl-C and SIGTERM (which stop_on_signals turns into the same) are how serve ends, not a failure
    return kind is not None and not issubclass(kind, KeyboardInterrupt | SystemExit)


def _drop_unless_needed(folder: Path, failed: bool) -> None:
    import shutil

    if failed:
        console.print(f"logs kept in {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class Orgs:
    """What the database holds of the dataset's organizations: enough to print one key and check it first."""

    count: int
    first: int | None  # the lowest org id (None: no organization at all)
    last: int | None
    org: int | None  # the org whose key is printed, when it exists
    key_hash: str | None  # its stored sha256(key), hex


async def _orgs(conn: asyncpg.Connection, wanted: int | None) -> Orgs:
    row = await conn.fetchrow("SELECT count(*) AS n, min(id) AS first, max(id) AS last FROM organizations")
    count, first, last = (0, None, None) if row is None else (row["n"], row["first"], row["last"])
    org = wanted if wanted is not None else first
    key_hash = None if org is None else await conn.fetchval(
        "SELECT api_key_hash FROM organizations WHERE id = $1", org)
    return Orgs(int(count), first, last, org if key_hash is not None else None, key_hash)


def key_line(orgs: Orgs, secret: str, terminal: bool) -> str:
    """One org's API key and where the others come from, for the terminal only: when the output goes to a pipe or
    a file (a CI log, `docker logs`) the key is left out and the line says how to get it. A key is printed only
    when the database confirms it (its stored hash), so a dataset seeded with another secret is named, never
    answered with a key that would get a 401."""
    shown = "the built-in key secret" if secret == DEFAULT_KEY_SECRET else "your --key-secret"
    # the built-in secret is public (it is in the source); the user's own is never echoed
    named = secret if secret == DEFAULT_KEY_SECRET else "<key secret>"
    formula = f'bk_N_ + the first 32 hex digits of sha256("{named}:N")'
    if orgs.count == 0:
        return f"API keys: none yet, the database has no dataset (`bookbench db seed`; org N's key: {formula})"
    others = f"org N's key: `bookbench serve --org N`, or {formula}"
    if orgs.org is None:
        return f"API keys: --org names no org of this dataset, which has orgs {orgs.first}-{orgs.last} ({others})"
    key = api_key(orgs.org, secret)
    if hashlib.sha256(key.encode()).hexdigest() != orgs.key_hash:
        return (f"API keys: org {orgs.org}'s key is not derived from {shown}: the dataset was seeded with another "
                "secret; pass that one as --key-secret (or BOOKBENCH_KEY_SECRET)")
    if not terminal:
        return (f"API key of org {orgs.org}: not printed, the output is not a terminal (keys stay out of logs); "
                f"{formula} (from {shown}), header `Authorization: Bearer <key>`")
    return (f"API key of org {orgs.org}: {key} (header `Authorization: Bearer <key>`; orgs {orgs.first}-{orgs.last}, "
            f"{others})")
