"""`bookbench serve`: the reference service on 127.0.0.1 until Ctrl-C or SIGTERM."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from bookbench.cli.common import (
    AllowRemoteOpt,
    DataDirOpt,
    DsnOpt,
    console,
    guard_dsn,
    handle_errors,
    stop_on_signals,
)


@handle_errors
def serve(
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="uvicorn worker processes")] = 1,
    dispatchers: Annotated[int, typer.Option(
        "--dispatchers", min=0, max=16, help="notification dispatchers beside the service, delivering to bookbench's "
        "fake SMS and calendar providers (0: none; the outbox then only fills)")] = 1,
    dsn: DsnOpt = None, data_dir: DataDirOpt = None, allow_remote: AllowRemoteOpt = False,
) -> None:
    """Run the reference service on 127.0.0.1 until Ctrl-C or SIGTERM (embedded database unless --dsn), with its
    notification dispatchers and the fake providers; Ctrl-C or SIGTERM stops them all and, if this command started
    it, the embedded server."""
    import tempfile
    from contextlib import ExitStack
    from pathlib import Path

    from bookbench.db.conn import run_with
    from bookbench.db.schema import apply_schema
    from bookbench.pipeline.notify import notify_stack
    from bookbench.pipeline.stack import ServiceProcess, database

    dsn = guard_dsn(dsn, allow_remote)  # before anything connects: the schema is applied there
    stop_on_signals()  # SIGTERM (docker stop, CI cancel, timeout) unwinds like Ctrl-C: nothing is left running
    with database(dsn, data_dir) as url, ExitStack() as stack:
        run_with(url, apply_schema)
        proc = ServiceProcess(url, port=port, workers=workers, inherit_output=True)
        stack.callback(proc.stop)
        proc.start()
        console.print(f"serving on {proc.base_url} (OpenAPI: {proc.base_url}/docs); Ctrl-C stops")
        notify = None
        if dispatchers:
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bookbench-serve-")))
            notify = stack.enter_context(notify_stack(url, dispatchers, folder / "logs", folder))
            console.print(f"notifications: {dispatchers} dispatcher(s); fake SMS gateway {notify.url('sms')}, fake "
                          f"calendar {notify.url('calendar')} (received messages: {folder}/received_*.jsonl)")
        while proc.alive():
            dead = notify.dead() if notify is not None else None
            if dead:
                console.print(f"[red]{dead}[/]")
                break
            time.sleep(0.5)


