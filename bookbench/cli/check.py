"""`bookbench check`: the pre-deployment checks, self-hosted or against a deployment."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import typer

from bookbench.artifacts.junit import check_writable
from bookbench.checks.base import CheckResult, CheckTarget
from bookbench.checks.outcome import failed, print_table, write_junit
from bookbench.checks.runner import HOSTILE_EXAMPLES, SUITES, run_suites
from bookbench.cli.common import (
    EXIT_FAILED,
    EXIT_USAGE,
    AllowRemoteOpt,
    DataDirOpt,
    DsnOpt,
    KeySecretOpt,
    TargetOpt,
    console,
    err_console,
    guard_dsn,
    handle_errors,
    stop_on_signals,
)
from bookbench.config.dataset import DEFAULT_KEY_SECRET, DatasetParams
from bookbench.config.dsn import mask_dsn
from bookbench.config.targets import pin_loopback
from bookbench.db.conn import run_with
from bookbench.db.seed import current_dataset, seed
from bookbench.errors import DatabaseError, UsageError
from bookbench.pipeline.stack import database, service
from bookbench.target import profile
from bookbench.target.bind import bind

CHECK_DB = "bookbench_check"
_LAYOUT_HELP = "with --base-url and no --dsn, the deployment's dataset layout (as given to bookbench db seed)"
# Small on purpose: the checks test correctness, not speed, and must run in seconds.
CHECK_DATASET = DatasetParams(orgs=3, providers_per_org=3, contacts=300, appointments=3000, seed=7)


def _params_from_db(dsn: str, key_secret: str) -> DatasetParams:
    """The id layout of a bookbench-seeded database, read from bookbench_meta."""
    meta = run_with(dsn, current_dataset)
    if meta is None:
        return DatasetParams(key_secret=key_secret)
    p = meta["params"]
    return DatasetParams(orgs=int(p["orgs"]), providers_per_org=int(p["providers_per_org"]),
                         contacts=int(p["contacts"]), appointments=int(p["appointments"]), seed=int(p["seed"]),
                         past_days=int(p["past_days"]), future_days=int(p["future_days"]),
                         anchor=dt.date.fromisoformat(p["anchor"]), key_secret=key_secret)


def _check_database_on(dsn: str) -> str:
    """A `bookbench_check` database beside the one `dsn` names: the checks seed their own small dataset and must
    never truncate the user's tables."""
    parts = urlsplit(dsn)
    if not parts.scheme:
        raise UsageError("self-hosted checks with --dsn need a URL-style DSN (postgresql://user@host/db); "
                            "or run the service yourself and pass --base-url")

    async def ensure(conn: asyncpg.Connection) -> None:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", CHECK_DB):
            try:
                await conn.execute(f"CREATE DATABASE {CHECK_DB}")
            except asyncpg.PostgresError as exc:
                raise DatabaseError(f"cannot create the {CHECK_DB} database for the checks ({exc}); create it "
                                    f"yourself or run the service and pass --base-url") from exc

    run_with(dsn, ensure)
    return urlunsplit((parts.scheme, parts.netloc, f"/{CHECK_DB}", parts.query, parts.fragment))


@contextmanager
def _self_hosted(dsn: str | None, data_dir: Path | None, key_secret: str, providers: bool,
                 target: str | None) -> Iterator[CheckTarget]:
    """Embedded (or given) server with the small check dataset in its own database, the service and, for the
    notifications suite, the fake providers and a dispatcher."""
    from bookbench.db import notifications as outbox
    from bookbench.pipeline.notify import notify_stack

    params = dataclasses.replace(CHECK_DATASET, key_secret=key_secret)
    with database(_check_database_on(dsn) if dsn else None, data_dir, name=CHECK_DB) as url, \
            tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        run_with(url, lambda conn: seed(conn, params))
        # an empty outbox, as every run's scenario starts with: the scratch database keeps what earlier checks
        # queued, and rows left by a re-seed before it cleared them refused every new booking (keys by id)
        run_with(url, outbox.reset)
        log = Path(tmp) / "service.log"
        proc = stack.enter_context(service(url, log_path=log))
        urls = None
        if providers:
            notify = stack.enter_context(notify_stack(url, 1, Path(tmp) / "logs", Path(tmp) / "notifications"))
            urls = {"sms": notify.url("sms"), "calendar": notify.url("calendar")}
        # preflight and audit read the database the user named, not the scratch one beside it
        yield CheckTarget(proc.base_url, url, params, providers=urls, scratch=True, service_log=log,
                          database_dsn=dsn, api=bind(target, "rest", params, url, base_url=proc.base_url))


def _parse_suites(names: list[str], deployment: bool) -> list[str]:
    wanted: set[str] = set()
    for name in names or ["all"]:
        if name == "all":
            # the notifications suite drives bookbench's fake providers; a deployment is wired to its own
            wanted.update(s for s in SUITES if not (deployment and s == "notifications"))
        elif name in SUITES:
            wanted.add(name)
        else:
            err_console.print(f"[red]unknown check {name!r}[/]; choose from {', '.join((*SUITES, 'all'))}")
            raise typer.Exit(EXIT_USAGE)
    return [s for s in SUITES if s in wanted]


@handle_errors
def check(
    suites: Annotated[list[str] | None, typer.Argument(
        metavar="[SUITE]...", help=f"{' | '.join(SUITES)} | all (default: all)")] = None,
    base_url: Annotated[str | None, typer.Option(
        "--base-url", help="check this running service instead of starting one")] = None,
    repeat: Annotated[int, typer.Option("--repeat", min=1, max=1000, help="stress rounds")] = 1,
    examples: Annotated[int, typer.Option(
        "--examples", min=1, max=20_000,
        help="hostile: generated requests per endpoint (8 endpoints; each stops after 120 s)")] = HOSTILE_EXAMPLES,
    junit: Annotated[Path | None, typer.Option("--junit", help="write JUnit XML here")] = None,
    target: TargetOpt = None,
    allow_remote: AllowRemoteOpt = False,
    key_secret: KeySecretOpt = DEFAULT_KEY_SECRET,
    dsn: DsnOpt = None, data_dir: DataDirOpt = None,
    orgs: Annotated[int | None, typer.Option(
        "--orgs", min=1, help=f"{_LAYOUT_HELP}: organizations (default 50)")] = None,
    providers_per_org: Annotated[int | None, typer.Option(
        "--providers-per-org", min=1, help=f"{_LAYOUT_HELP}: practitioners per clinic (default 10)")] = None,
    contacts: Annotated[int | None, typer.Option(
        "--contacts", min=1, help=f"{_LAYOUT_HELP}: contacts (default 100,000)")] = None,
) -> None:
    """Pre-deployment checks: stress, smoke, uat, preflight, notifications (self-hosted), hostile, audit. Exit 1
    when one fails. With --target, smoke, uat, stress (and the audit, when the profile maps its table) speak the
    profile; the suites written for the reference service are reported as not run for another profile."""
    # SIGTERM and SIGHUP (a CI cancel, a closed terminal) unwind like Ctrl-C: the service and the embedded server
    # this command started are stopped, never left running
    stop_on_signals()
    prof = profile.load(target) if target else None
    if prof is not None and not prof.reference and not base_url:
        # bookbench can start only its own service: another API is checked where it runs
        if prof.base_url is None:
            raise UsageError(f"--target {target}: profile {prof.name} is not the reference service and names no "
                             "base_url; pass --base-url")
        base_url = prof.base_url
    chosen = _parse_suites(suites or [], deployment=base_url is not None)
    if junit is not None:
        check_writable(junit)  # before the checks run, not after
    results: list[CheckResult]
    # before anything connects; the checks then use the addresses judged, never a name resolved again
    dsn = guard_dsn(dsn, allow_remote)
    if base_url:
        base_url = pin_loopback(base_url, "--base-url", allow_remote)
        if dsn and (orgs or providers_per_org or contacts):
            raise UsageError("--orgs / --providers-per-org / --contacts describe a deployment checked without --dsn; "
                             "with --dsn the layout is read from the database")
        default = DatasetParams(key_secret=key_secret)
        params = _params_from_db(dsn, key_secret) if dsn else dataclasses.replace(
            default, orgs=orgs or default.orgs, providers_per_org=providers_per_org or default.providers_per_org,
            contacts=contacts or default.contacts)
        if params.contacts < params.orgs:
            raise UsageError(f"--contacts ({params.contacts}) must be at least --orgs ({params.orgs})")
        checked = CheckTarget(base_url.rstrip("/"), dsn, params,
                              api=bind(target, "rest", params, dsn, base_url=base_url.rstrip("/")))
        results = asyncio.run(run_suites(checked, chosen, repeat, examples))
    else:
        where = f"the server {mask_dsn(dsn)} names" if dsn else "the embedded database"
        console.print(f"starting the service for the checks on {where} (their writes go to a database of their "
                      f"own, {CHECK_DB}) ...")
        with _self_hosted(dsn, data_dir, key_secret, "notifications" in chosen, target) as checked:
            if {"preflight", "audit"} & set(chosen):
                console.print(f"preflight and audit read {mask_dsn(checked.database_dsn or checked.dsn or '')}")
            results = asyncio.run(run_suites(checked, chosen, repeat, examples))
    print_table(results, console)
    if junit is not None:
        write_junit(results, junit)
        console.print(f"JUnit XML: {junit}")
    if failed(results):
        raise typer.Exit(EXIT_FAILED)
    if all(r.skipped for r in results):
        # nothing was checked: not a pass
        err_console.print(f"[red]none of the checks asked for applies to profile {prof.name if prof else target}[/]")
        raise typer.Exit(EXIT_FAILED)
