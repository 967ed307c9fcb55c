"""`bookbench export RUN --csv`: a run's samples (format 3, Parquet) as format 2's CSV.gz, one file per scenario."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bookbench.cli.common import console, handle_errors
from bookbench.errors import UsageError


@handle_errors
def export(run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="a run folder (results/<run-id>)")],
           csv: Annotated[bool, typer.Option("--csv", help="CSV.gz with format 2's columns (the one export format, "
                                             "also without the flag)")] = False,
           scenario: Annotated[str | None, typer.Option("--scenario", help="only this scenario")] = None,
           out: Annotated[Path | None, typer.Option("--out", help="where to write (default: RUN_DIR/export)")]
           = None) -> None:
    """Write each scenario's samples as `<scenario>.csv.gz` (ts, latency_ms, name, method, status, ok, error,
    bytes, users, worker, intended), read and written in batches: any size fits in memory."""
    from bookbench.artifacts import manifest, sample_parts
    from bookbench.artifacts.folder import existing_run

    folder = existing_run(run_dir)
    names = list(manifest.read(folder.root).scenarios)
    if scenario is not None:
        if scenario not in names:
            raise UsageError(f"--scenario {scenario}: not a scenario of {run_dir} (it has {', '.join(names)})")
        names = [scenario]
    target = out if out is not None else folder.root / "export"
    scenarios = manifest.read(folder.root).scenarios
    for name in names:
        entry = scenarios[name]
        parts = sample_parts.files(folder.sample_parts(name))
        if parts:
            # checked as the report checks them: a cut or altered file is named and left out, never exported
            # silently (nor a traceback from the Parquet reader)
            parts, status, detail, _ = sample_parts.verify(folder.root, folder.sample_parts_rel(name),
                                                           entry.samples_files)
            if status != "verified":
                console.print(f"{name}: samples {status}" + (f" ({detail})" if detail else ""))
        if not parts:
            legacy = folder.samples(name)
            console.print(f"{name}: " + (f"already CSV.gz (samples format 1/2): {legacy}" if legacy.exists()
                                         else "no samples recorded"))
            continue
        dest = target / f"{name}.csv.gz"
        rows = sample_parts.export_csv(parts, dest)
        console.print(f"{name}: {rows:,} rows -> {dest}")
