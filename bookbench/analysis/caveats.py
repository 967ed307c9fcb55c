"""What the judge reads from the manifest: the rules of scenarios.yaml, the index gate and how pages name the
index set, why notifications were off, which verdicts were not measured by design, and the caveats that make a
run INCOMPLETE."""

from __future__ import annotations

from collections.abc import Iterable

from bookbench.analysis.integrity_verdicts import NO_DATABASE
from bookbench.analysis.limits import NOTIFICATION_METRICS
from bookbench.analysis.verdict import Verdict
from bookbench.artifacts.manifest import AS_FOUND, Manifest, ScenarioEntry, notifications_off
from bookbench.config.scenarios import AlertRules, ReviewTargets, Thresholds

# the commands that start runs with notifications off (read from an old manifest's command line)
SCHEDULED = frozenset({"compare", "calibrate", "sweep", "capacity"})


def index_gate(manifest: Manifest) -> Verdict:
    idx = manifest.index_set
    present = idx.indexes
    if present is None:
        return Verdict("gate", "run", "indexes_created", None, 1, "not run", 0, f"indexes {index_set_label(manifest)}")
    names = ", ".join(i.name for i in present)
    what = f"set {idx.name}" if idx.applied and idx.name != AS_FOUND else "indexes as found"
    return Verdict("gate", "run", "indexes_created", len(present), 1, "pass" if present else "fail", len(present),
                   f"{what}: {names or 'no performance index'}")


def index_set_label(manifest: Manifest) -> str:
    """What the run measured, index-wise, for page headers: the set bookbench applied, or the indexes as found (a
    database bookbench did not create, no set named); without database access nothing was applied or recorded,
    whatever name an older run folder wrote."""
    idx = manifest.index_set
    if idx.indexes is None:
        return "as found, not recorded (no database access: --dsn)"
    if idx.applied and idx.name != AS_FOUND:
        return idx.name
    return f"as found ({len(idx.indexes)} performance index(es))"


def notifications_reason(manifest: Manifest) -> str | None:
    """Why the run left notifications off: as the run recorded it, or, for a run folder from before that record, as
    its target and command line say. None: they were on (or an old run folder that does not say)."""
    if manifest.notifications_off:
        return manifest.notifications_off
    command = manifest.command
    scheduled = (len(command) > 1 and command[1] in SCHEDULED) or manifest.round is not None
    return notifications_off(manifest.target.url != "self-hosted", command, scheduled, True)


def by_design(v: Verdict, entry: ScenarioEntry | None, off: str) -> bool:
    """A verdict the run chose not to measure: Path B turned off, no database access, checks skipped; never one a
    fault or a stop left blank (those stay in plain sight)."""
    if v.status != "not run":
        return False
    if v.scenario in ("checks", "run"):
        return True
    if entry is None:
        return False
    if v.metric in NOTIFICATION_METRICS:
        return entry.notifications_unmeasured is None and v.detail == off
    return v.kind == "integrity" and v.detail == (entry.integrity_unmeasured or NO_DATABASE)


def rules(manifest: Manifest) -> tuple[Thresholds, ReviewTargets, AlertRules]:
    sf = manifest.scenario_file
    return (Thresholds.model_validate(sf.thresholds), ReviewTargets.model_validate(sf.review_targets),
            AlertRules.model_validate(sf.alert_rules))


def caveats(manifest: Manifest, verdicts: Iterable[Verdict]) -> list[str]:
    out = []
    if manifest.quick:
        out.append(f"quick run (durations x{manifest.duration_factor:g})")
    elif manifest.duration_factor < 1:
        # shortened is shortened, whichever option did it (compare's --duration-factor, a sweep's)
        out.append(f"shortened run (durations x{manifest.duration_factor:g})")
    status = manifest.status
    if status in ("interrupted", "failed", "running", "killed"):
        out.append(f"run {status}" + (f": {manifest.reason}" if manifest.reason else ""))
    not_run = sorted({v.scenario for v in verdicts if v.kind == "threshold" and v.status == "not run"})
    if not_run:
        out.append(f"scenario(s) not run: {', '.join(not_run)}")
    skipped = [v.metric for v in verdicts if v.kind == "check" and v.status == "not run"]
    if skipped:
        out.append(f"checks not run: {', '.join(skipped)}")
    if any(v.kind == "integrity" and v.metric == "double_bookings" and v.status == "not run" and v.samples
           for v in verdicts):
        out.append("double-booking audit not run (no --dsn)")
    return out

