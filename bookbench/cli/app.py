"""The `bookbench` command line: db, indexes, serve, check, run, report and review."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from bookbench.cli.check import check
from bookbench.cli.common import (
    AppointmentsOpt,
    ContactsOpt,
    DataDirOpt,
    DsnOpt,
    KeySecretOpt,
    OrgsOpt,
    ProvidersOpt,
    SeedOpt,
    console,
    dataset_options,
    handle_errors,
)
from bookbench.cli.compare import calibrate, compare
from bookbench.cli.report import report, review
from bookbench.cli.run import run
from bookbench.cli.sweep import sweep
from bookbench.db import indexes as index_sets
from bookbench.db.conn import run_with
from bookbench.db.embedded import EmbeddedPostgres
from bookbench.db.schema import apply_schema, schema_version
from bookbench.db.seed import DEFAULT_KEY_SECRET, DatasetParams, current_dataset, seed, table_stats
from bookbench.pipeline.stack import ServiceProcess, database
from bookbench.spec.targets import mask_dsn

app = typer.Typer(help="Load tests, index benchmarks and pre-deployment checks for a clinic-booking API.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
db_app = typer.Typer(help="The database: embedded server lifecycle, schema and dataset.", no_args_is_help=True)
idx_app = typer.Typer(help="Performance index sets from sql/indexes/.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(idx_app, name="indexes")
app.command("check")(check)
app.command("run")(run)
app.command("report")(report)
app.command("review")(review)
app.command("compare")(compare)
app.command("calibrate")(calibrate)
app.command("sweep")(sweep)

_defaults = DatasetParams()


def _mb(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB"


@db_app.command("up")
@handle_errors
def db_up(data_dir: DataDirOpt = None) -> None:
    """Start the embedded PostgreSQL (kept running until `db down`) and apply the schema."""
    pg = EmbeddedPostgres(data_dir)
    state = pg.start()
    run_with(state.dsn(), apply_schema)
    console.print(f"embedded PostgreSQL running: {state.dsn()} (pid {state.pid}, data {pg.data_dir})")


@db_app.command("down")
@handle_errors
def db_down(data_dir: DataDirOpt = None) -> None:
    """Stop the embedded PostgreSQL."""
    stopped = EmbeddedPostgres(data_dir).stop()
    console.print("stopped" if stopped else "not running")


@db_app.command("reset")
@handle_errors
def db_reset(data_dir: DataDirOpt = None,
             yes: Annotated[bool, typer.Option("--yes", help="do not ask")] = False) -> None:
    """Stop the embedded server and delete its whole data folder."""
    pg = EmbeddedPostgres(data_dir)
    if not yes:
        typer.confirm(f"delete {pg.data_dir}?", abort=True)
    pg.destroy()
    console.print(f"deleted {pg.data_dir}")


@db_app.command("status")
@handle_errors
def db_status(dsn: DsnOpt = None, data_dir: DataDirOpt = None) -> None:
    """Server state, schema version, dataset and table sizes."""
    if not dsn:
        pg = EmbeddedPostgres(data_dir)
        state = pg.state()
        console.print(f"embedded server: {'running on ' + state.dsn() if state else 'stopped'} ({pg.data_dir})")
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
            console.print(f"  {table:<14} {n:>10,} rows  {_mb(sizes[table]):>10}")

    run_with(dsn, _status)


@db_app.command("seed")
@handle_errors
def db_seed(
    orgs: OrgsOpt = _defaults.orgs, providers_per_org: ProvidersOpt = _defaults.providers_per_org,
    contacts: ContactsOpt = _defaults.contacts, appointments: AppointmentsOpt = _defaults.appointments,
    seed_: SeedOpt = _defaults.seed, key_secret: KeySecretOpt = DEFAULT_KEY_SECRET,
    force: Annotated[bool, typer.Option("--force", help="regenerate even if the same dataset exists")] = False,
    dsn: DsnOpt = None, data_dir: DataDirOpt = None,
) -> None:
    """Generate the deterministic dataset (kept when one with the same parameters exists)."""
    params = dataset_options(orgs, providers_per_org, contacts, appointments, seed_, key_secret)
    with database(dsn, data_dir) as url:
        console.print(f"seeding {mask_dsn(url)}: {appointments:,} appointments, {contacts:,} contacts, "
                      f"{orgs} orgs (seed {seed_}) ...")
        report = run_with(url, lambda conn: seed(conn, params, force=force))
    verb = "kept the existing identical dataset" if report.reused else "generated"
    console.print(f"{verb} in {report.seconds:.2f} s")
    for table, n in report.row_counts.items():
        console.print(f"  {table:<14} {n:>10,} rows  {_mb(report.table_sizes[table]):>10}")


def _print_index_status(rows: list[index_sets.IndexStatus]) -> None:
    table = Table(title="performance indexes (constraint indexes not shown)")
    for col in ("index", "table", "set", "size", "idx_scan", "valid"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.name, r.table, r.index_set, _mb(r.size_bytes), str(r.idx_scan), "yes" if r.valid else "NO")
    if not rows:
        table.add_row("(none: baseline)", "", "", "", "", "")
    console.print(table)


@idx_app.command("apply")
@handle_errors
def indexes_apply(
    set_name: Annotated[str, typer.Argument(metavar="SET", help="none | seed | recommended | <file stem>")],
    keep_others: Annotated[bool, typer.Option("--keep-others", help="add to what exists")] = False,
    dsn: DsnOpt = None, data_dir: DataDirOpt = None,
) -> None:
    """Make SET the performance indexes present (CREATE INDEX CONCURRENTLY), then VACUUM ANALYZE."""
    index_sets.load_set(set_name)  # fail on an unknown set before touching the database
    with database(dsn, data_dir) as url:
        report = run_with(url, lambda c: index_sets.apply(c, set_name, exclusive=not keep_others))
        console.print(f"set {set_name}: created {', '.join(report.created) or 'nothing'}; "
                      f"dropped {', '.join(report.dropped) or 'nothing'} ({report.seconds:.1f} s incl. VACUUM ANALYZE)")
        _print_index_status(run_with(url, index_sets.status))


@idx_app.command("drop")
@handle_errors
def indexes_drop(dsn: DsnOpt = None, data_dir: DataDirOpt = None) -> None:
    """Drop every performance index: back to the baseline schema."""
    with database(dsn, data_dir) as url:
        report = run_with(url, lambda c: index_sets.apply(c, index_sets.BASELINE))
        console.print(f"dropped {', '.join(report.dropped) or 'nothing'}")


@idx_app.command("status")
@handle_errors
def indexes_status(dsn: DsnOpt = None, data_dir: DataDirOpt = None) -> None:
    """Every non-constraint index with its set, size and idx_scan."""
    with database(dsn, data_dir) as url:
        _print_index_status(run_with(url, index_sets.status))


@app.command("serve")
@handle_errors
def serve(
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="uvicorn worker processes")] = 1,
    dsn: DsnOpt = None, data_dir: DataDirOpt = None,
) -> None:
    """Run the reference service on 127.0.0.1 until Ctrl-C (embedded database unless --dsn)."""
    with database(dsn, data_dir) as url:
        run_with(url, apply_schema)
        proc = ServiceProcess(url, port=port, workers=workers, inherit_output=True)
        try:
            proc.start()
            console.print(f"serving on {proc.base_url} (OpenAPI: {proc.base_url}/docs); Ctrl-C stops")
            while proc.alive():
                time.sleep(0.5)
        finally:
            proc.stop()


def main() -> None:  # pragma: no cover - console script entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
