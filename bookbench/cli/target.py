"""`bookbench target`: check a target profile against a running API, write a commented one (from an OpenAPI
document where it can), print its JSON Schema, list the built-in profiles."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from bookbench import net
from bookbench.cli.common import (
    EXIT_ENVIRONMENT,
    EXIT_USAGE,
    AllowRemoteOpt,
    DsnOpt,
    KeySecretOpt,
    MaybeAppointmentsOpt,
    MaybeContactsOpt,
    MaybeOrgsOpt,
    MaybeProvidersOpt,
    MaybeSeedOpt,
    console,
    err_console,
    guard_dsn,
    handle_errors,
)
from bookbench.config.dataset import DEFAULT_KEY_SECRET
from bookbench.config.scenarios import SHIPPED_SCENARIOS
from bookbench.errors import UsageError

target_app = typer.Typer(help="Target profiles: which booking API bookbench talks to, and how.",
                         no_args_is_help=True)

ProfileArg = Annotated[str, typer.Argument(help="a built-in profile (bookbench target list) or a profile file")]


@target_app.command("check")
@handle_errors
def check(
    profile_name: ProfileArg,
    target_url: Annotated[str | None, typer.Option(
        "--target-url", help="the API's base URL (default: the profile's base_url)")] = None,
    appointments: MaybeAppointmentsOpt = None,
    contacts: MaybeContactsOpt = None,
    orgs: MaybeOrgsOpt = None,
    providers_per_org: MaybeProvidersOpt = None,
    seed: MaybeSeedOpt = None,
    scenario_file: Annotated[Path, typer.Option(
        "--scenario-file", help="scenarios.yaml whose dataset is the default layout")] = SHIPPED_SCENARIOS,
    allow_remote: AllowRemoteOpt = False,
    key_secret: KeySecretOpt = DEFAULT_KEY_SECRET,
    dsn: DsnOpt = None,
) -> None:
    """Validate a profile, resolve its pools, log in, and send one request of each operation (one booking far
    ahead, then its cancel); prints how each answer was read. Exit 0 when all read as success, 2 naming the
    profile key on a problem, 3 when the target cannot be reached."""
    import httpx

    from bookbench.config.dataset import DatasetParams
    from bookbench.config.scenarios import load_scenarios
    from bookbench.config.targets import pin_loopback
    from bookbench.target import profile
    from bookbench.target.bind import resolve as resolve_pools
    from bookbench.target.client import Request, Target
    from bookbench.target.probe import missing_values, run_probe, secrets_of

    path = profile.resolve(profile_name)
    prof = profile.load(profile_name)
    console.print(f"profile {prof.name} ({path}): valid, digest {prof.digest()}")
    url = target_url or prof.base_url
    if not url:
        raise UsageError(f"base_url: profile {prof.name} names no base URL; pass --target-url")
    url = pin_loopback(url, "--target-url" if target_url else "base_url", allow_remote)
    dsn = guard_dsn(dsn, allow_remote)
    overrides = {k: v for k, v in {"appointments": appointments, "contacts": contacts, "orgs": orgs,
                                   "providers_per_org": providers_per_org, "seed": seed}.items() if v is not None}
    params = DatasetParams(**{**load_scenarios(scenario_file).dataset.model_dump(), **overrides},
                           key_secret=key_secret)
    params.validate()
    # a call pool is read from the API being checked, through its login: its problems stop the check here
    tenants, creds = resolve_pools(prof, params, dsn, url)
    console.print(f"pools ({prof.pools.source}): {len(tenants)} tenants, "
                  f"{sum(len(t.contacts) for t in tenants)} contacts, {sum(len(t.providers) for t in tenants)} "
                  f"providers; credentials ({prof.auth.credentials.source}) for every tenant")
    first = creds.get(tenants[0].id, {})
    missing = missing_values(prof, first)
    if missing:
        for finding in missing:
            err_console.print(f"[red]invalid input:[/] {escape(finding.line())}")
        raise typer.Exit(EXIT_USAGE)
    target = Target(prof, tenants, creds)
    console.print(f"target {url} (tenant {tenants[0].id}; one booking far ahead is made, then cancelled)")
    with net.client(base_url=url, timeout=prof.timeout_s) as client:

        def send(req: Request) -> httpx.Response:
            return client.request(req.method, req.path, headers=req.headers, content=req.body)

        result = run_probe(target, send, secrets_of(prof, first), random.Random())
    for step in result.steps:
        mark = "[green]ok[/]  " if step.ok else "[red]FAIL[/]" if step.outcome is not None else "[yellow]--[/]  "
        read = step.outcome.describe() if step.outcome is not None else ""
        if step.name == "login" and step.outcome is not None:
            read = f"HTTP {step.outcome.status}"
        line = f"{mark} {step.name:26s} {escape(step.shown)}"
        console.print(line + (f" -> {escape(read)}" if read else "") + (f" ({escape(step.note)})" if step.note
                                                                       else ""))
        if step.headers:
            console.print(f"      {'':26s} headers: {escape(step.headers)}")
    if result.left_booked is not None:
        console.print(f"[yellow]note:[/] booking {result.left_booked} was made and not cancelled")
    for finding in result.findings:
        label = "error" if finding.environment else "invalid input"
        err_console.print(f"[red]{label}:[/] {escape(finding.line())}")
    if any(f.environment for f in result.findings):
        raise typer.Exit(EXIT_ENVIRONMENT)
    if result.findings:
        raise typer.Exit(EXIT_USAGE)
    console.print(f"[green]profile {prof.name} works against {url}[/]: every answer read as a success outcome")


@target_app.command("init")
@handle_errors
def init(
    out: Annotated[Path | None, typer.Option("--out", help="write here (default: print)")] = None,
    from_openapi: Annotated[str | None, typer.Option(
        "--from-openapi", help="an OpenAPI 2 or 3 document (file, or a loopback URL) to fill operations from")] = None,
    header: Annotated[list[str] | None, typer.Option(
        "--header", help="'Name: value' sent when fetching --from-openapi (repeatable), e.g. 'apikey: ...'")] = None,
    name: Annotated[str, typer.Option("--name", help="the profile's name")] = "my-booking-api",
    force: Annotated[bool, typer.Option("--force", help="overwrite --out if it exists")] = False,
    allow_remote: AllowRemoteOpt = False,
) -> None:
    """Write a commented profile template (the reference service's paths as the example), or one filled from an
    OpenAPI document, with TODO comments where it could not tell."""
    from bookbench.target import draft, openapi

    if out is not None and out.exists() and not force:
        raise UsageError(f"--out {out} exists; pass --force to overwrite it")
    if from_openapi:
        doc = openapi.fetch(from_openapi, openapi.parse_headers(header or []), allow_remote)
        spec = openapi.draft_from(doc, name, from_openapi)
    else:
        spec = draft.reference(name)
    text = draft.render(spec, str(out) if out is not None else f"{name}.yaml")
    if not _emit(text, out):
        return
    todo = text.count("TODO")
    console.print(f"wrote {out}" + (f" ({todo} TODO(s) to complete)" if todo else "")
                  + f"; then: bookbench target check {out}")


def _emit(text: str, out: Path | None) -> bool:
    """Print `text` (no --out), or write it to `out`; True when it was written to a file."""
    if out is None:
        print(text, end="")
        return False
    try:
        out.write_text(text)
    except OSError as exc:
        raise UsageError(f"--out {out}: {exc.strerror}") from None
    return True


@target_app.command("schema")
@handle_errors
def schema(out: Annotated[Path | None, typer.Option("--out", help="write here (default: print)")] = None) -> None:
    """The profile file's JSON Schema, for editors (yaml-language-server: $schema=...)."""
    from bookbench.target.profile import json_schema

    if _emit(json.dumps(json_schema(), indent=2) + "\n", out):
        console.print(f"wrote {out}")


@target_app.command("list")
@handle_errors
def list_profiles() -> None:
    """The built-in profiles with their descriptions."""
    from bookbench.target.profile import builtin_names, load

    for name in builtin_names():
        prof = load(name)
        console.print(f"{name:16s} {escape(prof.description)}" + (" (default)" if name == "reference-rest" else ""))
