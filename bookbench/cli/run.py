"""`bookbench run`: the load scenarios against the reference service or a deployment you point at."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bookbench.cli.common import (
    AllowRemoteOpt,
    DataDirOpt,
    DsnOpt,
    IndexDirOpt,
    KeySecretOpt,
    MaybeAppointmentsOpt,
    MaybeContactsOpt,
    MaybeOrgsOpt,
    MaybeProvidersOpt,
    MaybeSeedOpt,
    TargetOpt,
    TargetUrlOpt,
    console,
    handle_errors,
    split_list,
    stop_on_signals,
)
from bookbench.config.dataset import DEFAULT_KEY_SECRET
from bookbench.config.scenarios import SHIPPED_SCENARIOS, CommandLineLoad, parse_duration, parse_mix
from bookbench.errors import EXIT_ENVIRONMENT, EXIT_FAILED, EXIT_INTERRUPTED, UsageError


@handle_errors
def run(
    scenarios: Annotated[str | None, typer.Option(
        "--scenarios", help="comma-separated, e.g. single,ramp_up,burst,sustained (default: all in the file)")] = None,
    users: Annotated[int | None, typer.Option(
        "--users", min=1, max=10_000, help="an ad hoc run instead of the file's scenarios: one closed-model "
        "scenario 'adhoc' of this many users (default 1) for --duration, judged by the file's global limits")] = None,
    duration: Annotated[str | None, typer.Option(
        "--duration", help="length of the ad hoc run: 30s, 2m, 1h or seconds (default 30s)")] = None,
    spawn_rate: Annotated[float | None, typer.Option(
        "--spawn-rate", min=0.001, help="ad hoc run: users started per second (default: all at once)")] = None,
    scenario_mix: Annotated[str | None, typer.Option(
        "--scenario-mix", help="the operations to send instead of the file's task_mix, with optional weights: "
        "checkAvailability or checkAvailability:3,bookClinicAppointment:1")] = None,
    index_set: Annotated[str | None, typer.Option(
        "--index-set", help="none | seed | recommended (default: scenarios.yaml's index_set on the embedded "
        "database; with --dsn the database's indexes are left as found unless this is given)")] = None,
    cleanup: Annotated[bool, typer.Option(
        "--cleanup", help="on a --dsn database bookbench did not seed, delete this run's own bookings at the end "
        "(only the ids it was told about or can attribute; never anything else)")] = False,
    appointments: MaybeAppointmentsOpt = None,
    contacts: MaybeContactsOpt = None,
    orgs: MaybeOrgsOpt = None,
    providers_per_org: MaybeProvidersOpt = None,
    seed: MaybeSeedOpt = None,
    quick: Annotated[bool, typer.Option("--quick", help="scale durations by scenarios.yaml's quick_factor")] = False,
    out: Annotated[Path, typer.Option("--out", help="parent folder of run folders")] = Path("results"),
    scenario_file: Annotated[Path, typer.Option("--scenario-file", help="scenarios.yaml to use")] = SHIPPED_SCENARIOS,
    target_url: TargetUrlOpt = None,
    target: TargetOpt = None,
    workers: Annotated[int, typer.Option("--workers", min=0, max=64,
                                         help="Locust worker processes (0: one local runner)")] = 0,
    remote_workers: Annotated[int, typer.Option(
        "--remote-workers", min=0, max=256, help="also wait for this many workers started on other machines")] = 0,
    master_bind: Annotated[str, typer.Option(
        "--master-bind", help="address the Locust master listens on (remote workers need a reachable one)")] = (
        "127.0.0.1"),
    master_port: Annotated[int, typer.Option("--master-port", min=0, max=65535,
                                             help="Locust master port (0: a free one; with --remote-workers 5557, "
                                             "one port for the whole run)")] = 0,
    worker_wait: Annotated[float, typer.Option(
        "--worker-wait", min=1, help="seconds each scenario waits for its remote workers before the run fails, "
        "naming how many connected")] = 300.0,
    skip_checks: Annotated[bool, typer.Option(
        "--skip-checks", help="do not run smoke/uat/stress/preflight before the load")] = False,
    no_notifications: Annotated[bool, typer.Option(
        "--no-notifications", help="leave Path B out: no dispatchers, no fake SMS/calendar providers (the report "
        "says notifications were not measured, and why)")] = False,
    web_ui: Annotated[bool, typer.Option(
        "--web-ui", help="watch live in Locust's web UI on 127.0.0.1 (charts, per-endpoint table)")] = False,
    web_port: Annotated[int, typer.Option("--web-port", min=1, max=65535, help="port of --web-ui")] = 8089,
    no_report: Annotated[bool, typer.Option(
        "--no-report", help="do not write report.html (the run is still judged: exit 1 on NO-GO)")] = False,
    allow_remote: AllowRemoteOpt = False,
    key_secret: KeySecretOpt = DEFAULT_KEY_SECRET,
    index_dir: IndexDirOpt = None,  # read through the environment by every stage (db.indexes)
    dsn: DsnOpt = None, data_dir: DataDirOpt = None,
) -> None:
    """Run load scenarios in Locust and record every request; prints the run folder as its last line."""
    from bookbench.cli.terminal import render_and_print
    from bookbench.pipeline.narration import narrate_to
    from bookbench.pipeline.run import RunOptions, execute

    if (remote_workers or master_bind not in ("127.0.0.1", "::1", "localhost")) and not allow_remote:
        raise UsageError("remote workers and a non-loopback --master-bind send load from other machines; pass "
                         "--allow-remote (and a --target-url they can reach)")
    overrides = {k: v for k, v in {"appointments": appointments, "contacts": contacts, "orgs": orgs,
                                   "providers_per_org": providers_per_org, "seed": seed}.items() if v is not None}
    command_line = CommandLineLoad(
        users=users, duration_s=None if duration is None else parse_duration(duration, "--duration"),
        spawn_rate=spawn_rate, mix=None if scenario_mix is None else parse_mix(scenario_mix, "--scenario-mix"))
    opts = RunOptions(
        scenarios_path=scenario_file, scenarios=split_list(scenarios) or None, index_set=index_set,
        command_line=command_line, dataset_overrides=overrides, quick=quick, out=out,
        target_url=target_url, dsn=dsn, data_dir=data_dir, allow_remote=allow_remote, workers=workers,
        remote_workers=remote_workers, master_bind=master_bind, master_port=master_port, worker_wait=worker_wait,
        checks=not skip_checks, notifications=not no_notifications,
        web_port=web_port if web_ui else None,
        key_secret=key_secret, argv=["bookbench", *sys.argv[1:]], cleanup=cleanup, target=target,
    )
    stop_on_signals()
    outcome = execute(opts, narrate_to(console))
    go = True
    # the judge decides the exit code with or without the page: --no-report only skips the HTML
    try:
        go = render_and_print(outcome.run_dir, None, html=not no_report)
    except Exception as exc:  # the run's own outcome decides the exit code; a report failure is logged
        from bookbench.artifacts.folder import RunFolder
        from bookbench.errors import log_exception

        log = RunFolder(outcome.run_dir).log
        log_exception(log)
        console.print(f"[red]report not written:[/] {type(exc).__name__}: {exc} (traceback in {log})")
        go = False
        if outcome.status == "completed":
            print(outcome.run_dir, flush=True)
            raise typer.Exit(EXIT_ENVIRONMENT) from None
    # plain print: the last line is for scripts and must never be wrapped or styled
    print(outcome.run_dir, flush=True)
    if outcome.status == "interrupted":
        raise typer.Exit(EXIT_INTERRUPTED)
    if outcome.status == "failed":
        raise typer.Exit(EXIT_ENVIRONMENT)
    if not go:
        raise typer.Exit(EXIT_FAILED)
