"""`bookbench worker`: join a distributed run from a load machine, for all of its scenarios."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from bookbench.cli.common import AllowRemoteOpt, console, handle_errors, stop_on_signals
from bookbench.errors import EnvironmentFailure, UsageError


@handle_errors
def worker(
    master_host: Annotated[str, typer.Option("--master-host", help="the machine running `bookbench run "
                                             "--remote-workers N` (its --master-bind address)")],
    master_port: Annotated[int, typer.Option("--master-port", min=1, max=65535,
                                             help="the run's --master-port (one port for the whole run)")] = 5557,
    wait: Annotated[float, typer.Option(
        "--wait", min=1, help="seconds to wait for the run's master: before its first scenario (set-up, checks and "
        "warm-up come first) and between two scenarios; then exit 3")] = 600.0,
    log_dir: Annotated[Path | None, typer.Option(
        "--log-dir", help="where the plans received and the Locust logs go (default: a new private temporary "
        "folder, printed)")] = None,
    allow_remote: AllowRemoteOpt = False,
) -> None:
    """Serve every scenario of one run as a Locust worker, with the plan the run's master sends (its scenario, task
    mix, dataset layout and target profile; never this machine's scenarios.yaml). Exits 0 after the run's last
    scenario. The dataset secret comes from BOOKBENCH_KEY_SECRET (the built-in one when unset); it is never
    printed or sent."""
    from bookbench.pipeline.worker import WorkerOptions, serve, work_dir

    try:
        socket.getaddrinfo(master_host, master_port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise UsageError(f"--master-host {master_host}: cannot be resolved ({exc.strerror or exc})") from None
    opts = WorkerOptions(master_host, master_port, wait, work_dir(log_dir), allow_remote)
    secret = "BOOKBENCH_KEY_SECRET" if os.environ.get("BOOKBENCH_KEY_SECRET") else (
        "the built-in dataset secret (BOOKBENCH_KEY_SECRET is not set)")
    console.print(f"worker: waiting up to {wait:g} s for a bookbench master at {master_host}:{master_port}; API keys "
                  f"from {secret}; plans and logs in {opts.work_dir}")
    stop_on_signals()
    served = serve(opts, lambda line: console.print(f"worker: {line}", soft_wrap=True))
    if served.failed:
        raise EnvironmentFailure(f"run {served.run_id}: the Locust worker failed in {', '.join(served.failed)} (logs "
                                 f"in {opts.work_dir}); served: {', '.join(served.done) or 'none'}")
    console.print(f"worker: run {served.run_id} ended; served {len(served.done)} scenario(s): "
                  f"{', '.join(served.done)}")
