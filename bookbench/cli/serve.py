"""`bookbench serve`: the reference service on 127.0.0.1 until Ctrl-C or SIGTERM."""

from __future__ import annotations

import time
from pathlib import Path
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
