"""`bookbench serve`: the reference service on 127.0.0.1 until Ctrl-C or SIGTERM."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from bookbench.cli.common import DataDirOpt, DsnOpt, console, handle_errors, stop_on_signals


@handle_errors
def serve(
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="uvicorn worker processes")] = 1,
    dsn: DsnOpt = None, data_dir: DataDirOpt = None,
) -> None:
    """Run the reference service on 127.0.0.1 until Ctrl-C or SIGTERM (embedded database unless --dsn); both stop
    the service and, if this command started it, the embedded server."""
    from bookbench.db.conn import run_with
    from bookbench.db.schema import apply_schema
    from bookbench.pipeline.stack import ServiceProcess, database

    stop_on_signals()  # SIGTERM (docker stop, CI cancel, timeout) unwinds like Ctrl-C: nothing is left running
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


