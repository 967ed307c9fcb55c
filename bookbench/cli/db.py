"""`bookbench db`: the embedded server's lifecycle, the schema and the deterministic dataset."""

from __future__ import annotations

from typing import Annotated

import typer

from bookbench.cli.common import (
    AllowRemoteOpt,
    AppointmentsOpt,
    ContactsOpt,
    DataDirOpt,
    DsnOpt,
    KeySecretOpt,
    OrgsOpt,
    ProvidersOpt,
    SeedOpt,
    YesOpt,
    confirm_destructive,
    console,
    dataset_options,
    guard_dsn,
    handle_errors,
    mb,
)
from bookbench.config.dataset import DEFAULT_KEY_SECRET, DatasetParams
from bookbench.config.dsn import mask_dsn
from bookbench.errors import UsageError

db_app = typer.Typer(help="The database: embedded server lifecycle, schema and dataset.", no_args_is_help=True)
_defaults = DatasetParams()


@db_app.command("up")
@handle_errors
def db_up(data_dir: DataDirOpt = None) -> None:
    """Start the embedded PostgreSQL (kept running until `db down`) and apply the schema."""
    from bookbench.db.cluster import set_owner
    from bookbench.db.conn import run_with
    from bookbench.db.embedded import EmbeddedPostgres
    from bookbench.db.schema import apply_schema

    pg = EmbeddedPostgres(data_dir)
    state = pg.start()
    set_owner(pg, "db up")  # from now on only `db down` stops it, even if a command started it
    run_with(state.dsn(), apply_schema)
    console.print(f"embedded PostgreSQL running: {state.dsn()} (pid {state.pid}, data {pg.data_dir})")


@db_app.command("down")
@handle_errors
def db_down(data_dir: DataDirOpt = None,
            force: Annotated[bool, typer.Option("--force", help="stop it even while commands use it")] = False) -> None:
    """Stop the embedded PostgreSQL (refused while another bookbench command uses it, unless --force)."""
    from bookbench.db.cluster import live_leases
    from bookbench.db.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(data_dir)
    users = live_leases(pg.data_dir)
    if users and not force:
        raise UsageError(f"the embedded server is in use by {len(users)} running bookbench command(s) "
                         f"(pid {', '.join(map(str, users))}); let them finish, or pass --force")
    stopped = pg.stop()
    console.print("stopped" if stopped else "not running")


@db_app.command("reset")
@handle_errors
def db_reset(data_dir: DataDirOpt = None,
             yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False) -> None:
    """Stop the embedded server and delete its whole data folder."""
    from bookbench.db.embedded import EmbeddedPostgres

    pg = EmbeddedPostgres(data_dir)
    if not yes:
        typer.confirm(f"delete {pg.data_dir}?", abort=True)
    pg.destroy()
    console.print(f"deleted {pg.data_dir}")


@db_app.command("status")
@handle_errors
def db_status(dsn: DsnOpt = None, data_dir: DataDirOpt = None, allow_remote: AllowRemoteOpt = False) -> None:
    """Server state, schema version, dataset and table sizes."""
    from bookbench.db.conn import run_with
    from bookbench.db.embedded import EmbeddedPostgres
    from bookbench.db.schema import schema_version
    from bookbench.db.seed import current_dataset, table_stats

    dsn = guard_dsn(dsn, allow_remote)
    if not dsn:
        pg = EmbeddedPostgres(data_dir)
        state = pg.state()
        stale = pg.stale_pid() if state is None else None
        note = f"; a stale postmaster.pid names pid {stale}, not this cluster's server (removed at the next start)" \
            if stale else ""
        console.print(f"embedded server: {'running on ' + mask_dsn(state.dsn()) if state else 'stopped'}{note} "
                      f"({pg.data_dir})")
        if state is None:
            return
        dsn = state.dsn()

    async def _status(conn: object) -> None:
        version = await schema_version(conn)  # type: ignore[arg-type]
        console.print(f"database: {mask_dsn(dsn or '')}, schema version: {version or 'not applied'}")
        if version is None:
            return
        meta = await current_dataset(conn)  # type: ignore[arg-type]
        console.print(f"dataset: {meta['params'] if meta else 'none'}")
        counts, sizes = await table_stats(conn)  # type: ignore[arg-type]
        for table, n in counts.items():
            console.print(f"  {table:<14} {n:>10,} rows  {mb(sizes[table]):>10}")

    run_with(dsn, _status)


@db_app.command("seed")
@handle_errors
def db_seed(
    orgs: OrgsOpt = _defaults.orgs, providers_per_org: ProvidersOpt = _defaults.providers_per_org,
    contacts: ContactsOpt = _defaults.contacts, appointments: AppointmentsOpt = _defaults.appointments,
    seed_: SeedOpt = _defaults.seed, key_secret: KeySecretOpt = DEFAULT_KEY_SECRET,
    force: Annotated[bool, typer.Option("--force", help="regenerate even if the same dataset exists")] = False,
    dsn: DsnOpt = None, data_dir: DataDirOpt = None, allow_remote: AllowRemoteOpt = False, yes: YesOpt = False,
) -> None:
    """Generate the deterministic dataset (kept when one with the same parameters exists). With --dsn it asks
    first (--yes): the schema is applied there and a different dataset is replaced."""
    from bookbench.db.conn import run_with
    from bookbench.db.lease import database_lease
    from bookbench.db.seed import seed
    from bookbench.pipeline.stack import database

    params = dataset_options(orgs, providers_per_org, contacts, appointments, seed_, key_secret)
    dsn = guard_dsn(dsn, allow_remote)
    # any seed may TRUNCATE (a different dataset, or --force), and the schema is applied first either way
    confirm_destructive(dsn, "db seed would apply the schema and replace the tables' rows", yes)
    with database(dsn, data_dir) as url, database_lease(url, "bookbench db seed"):
        console.print(f"seeding {mask_dsn(url)}: {appointments:,} appointments, {contacts:,} contacts, "
                      f"{orgs} orgs (seed {seed_}) ...")
        report = run_with(url, lambda conn: seed(conn, params, force=force))
    verb = "kept the existing identical dataset" if report.reused else "generated"
    console.print(f"{verb} in {report.seconds:.2f} s")
    for table, n in report.row_counts.items():
        console.print(f"  {table:<14} {n:>10,} rows  {mb(report.table_sizes[table]):>10}")


