"""`bookbench indexes`: apply, drop and inspect the performance index sets of sql/indexes/."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich import box

from bookbench.cli.common import (
    AllowRemoteOpt,
    DataDirOpt,
    DsnOpt,
    IndexDirOpt,
    YesOpt,
    confirm_destructive,
    console,
    guard_dsn,
    handle_errors,
    mb,
)
from bookbench.tables import ContentTable

if TYPE_CHECKING:
    from bookbench.db.indexes import IndexStatus

idx_app = typer.Typer(help="Performance index sets from sql/indexes/.", no_args_is_help=True)


def _print_index_status(rows: list[IndexStatus]) -> None:
    # names are what a reader looks for, so they never wrap or get cut; a light box and short headers keep the
    # table inside 80 columns (the table, already in the name, goes last: it is the one cut if any, and only on a
    # terminal: piped, the table is as wide as its content)
    table = ContentTable(title="performance indexes (constraint indexes not shown)", box=box.SIMPLE_HEAD,
                         pad_edge=False, title_justify="left", collapse_padding=True)
    table.add_column("index", no_wrap=True)
    table.add_column("set", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("scans", justify="right", no_wrap=True)
    table.add_column("table", no_wrap=True)
    for r in rows:
        # an invalid index (a failed CONCURRENTLY build) is rare and must stand out, so it is said, not a column
        name = r.name if r.valid else f"{r.name} [red](INVALID)[/]"
        table.add_row(name, r.index_set, mb(r.size_bytes), f"{r.idx_scan:,}", r.table)
    if not rows:
        table.add_row("(none: baseline)", "", "", "", "")
    console.print(table)


@idx_app.command("apply")
@handle_errors
def indexes_apply(
    set_name: Annotated[str, typer.Argument(metavar="SET", help="none | seed | recommended | <file stem>")],
    keep_others: Annotated[bool, typer.Option("--keep-others", help="add to what exists")] = False,
    index_dir: IndexDirOpt = None,
    dsn: DsnOpt = None, data_dir: DataDirOpt = None, allow_remote: AllowRemoteOpt = False, yes: YesOpt = False,
) -> None:
    """Make SET the performance indexes present (CREATE INDEX CONCURRENTLY), then VACUUM ANALYZE."""
    from bookbench.db import indexes as index_sets
    from bookbench.db.conn import run_with
    from bookbench.db.lease import database_lease
    from bookbench.pipeline.stack import database

    index_sets.load_set(set_name)  # fail on an unknown set before touching the database
    dsn = guard_dsn(dsn, allow_remote)
    change = "create" if keep_others else "create and drop"
    confirm_destructive(dsn, f"indexes apply {set_name} would {change} performance indexes", yes)
    with database(dsn, data_dir) as url, database_lease(url, f"bookbench indexes apply {set_name}"):
        report = run_with(url, lambda c: index_sets.apply(c, set_name, exclusive=not keep_others))
        console.print(f"set {set_name}: created {', '.join(report.created) or 'nothing'}; "
                      f"dropped {', '.join(report.dropped) or 'nothing'} ({report.seconds:.1f} s incl. VACUUM ANALYZE)")
        _print_index_status(run_with(url, index_sets.status))


@idx_app.command("drop")
@handle_errors
def indexes_drop(dsn: DsnOpt = None, data_dir: DataDirOpt = None, allow_remote: AllowRemoteOpt = False,
                 yes: YesOpt = False) -> None:
    """Drop every performance index: back to the baseline schema."""
    from bookbench.db import indexes as index_sets
    from bookbench.db.conn import run_with
    from bookbench.db.lease import database_lease
    from bookbench.pipeline.stack import database

    dsn = guard_dsn(dsn, allow_remote)
    confirm_destructive(dsn, "indexes drop would drop every performance index", yes)
    with database(dsn, data_dir) as url, database_lease(url, "bookbench indexes drop"):
        report = run_with(url, lambda c: index_sets.apply(c, index_sets.BASELINE))
        console.print(f"dropped {', '.join(report.dropped) or 'nothing'}")


@idx_app.command("status")
@handle_errors
def indexes_status(dsn: DsnOpt = None, data_dir: DataDirOpt = None, allow_remote: AllowRemoteOpt = False,
                   index_dir: IndexDirOpt = None) -> None:
    """Every non-constraint index with its set, size and idx_scan."""
    from bookbench.db import indexes as index_sets
    from bookbench.db.conn import run_with
    from bookbench.pipeline.stack import database

    dsn = guard_dsn(dsn, allow_remote)
    with database(dsn, data_dir) as url:
        _print_index_status(run_with(url, index_sets.status))


