"""The manifest of a run in progress and its transitions: each named step of the run sets its fields and writes
manifest.json once, so a reader (report, a crash, the next command) always finds the last completed step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bookbench.artifacts import manifest as manifest_file
from bookbench.artifacts.manifest import (
    Cleanup,
    Counts,
    IndexSet,
    Manifest,
    RunStatus,
    ScenarioEntry,
    ScenarioStatus,
    now_iso,
)
from bookbench.artifacts.sample_parts import SealedFile


class RunState:
    """The one writer of a run's manifest while it runs."""

    def __init__(self, root: Path, manifest: Manifest) -> None:
        self.root = root
        self.manifest = manifest

    def _save(self) -> None:
        manifest_file.write(self.root, self.manifest)

    def started(self) -> None:
        """The planned run, before anything is touched."""
        self._save()

    def database_chosen(self, role: str) -> None:
        """Whose database it is (embedded, seeded, reused, deployment), once the dataset step decided (the
        dataset's reuse and seeding time were set by it)."""
        self.manifest.database_role = role
        self._save()

    def database_prepared(self, index_set: IndexSet, counts: dict[str, int], sizes: dict[str, int],
                          postgres: dict[str, str]) -> None:
        """Dataset and indexes in place: the indexes before and after, what the tables hold, PostgreSQL's facts."""
        m = self.manifest
        m.index_set, m.postgres = index_set, postgres
        m.dataset.row_counts, m.dataset.table_bytes = counts, sizes
        self._save()

    def target_bound(self, profile: str, digest: str) -> None:
        self.manifest.target.profile, self.manifest.target.profile_digest = profile, digest
        self._save()

    def evidence_recorded(self, queries: dict[str, Any], write_cost: dict[str, Any] | None,
                          table_stats: dict[str, Any]) -> None:
        """EXPLAIN of every statement, the write cost, and the table counters before the load."""
        m = self.manifest
        m.queries, m.write_cost, m.table_stats = queries, write_cost, {"before": table_stats}
        self._save()

    def scenario_started(self, name: str, settle: dict[str, Any] | None) -> ScenarioEntry:
        """Locust is about to start: the settling done before it, and the start time."""
        entry = self.manifest.scenarios[name]
        entry.settle = settle
        entry.started_at, entry.status = now_iso(), "running"
        self._save()
        return entry

    def scenario_ended(self, name: str, ended: tuple[str, ScenarioStatus, str | None], counts: Counts,
                       samples: tuple[str | None, list[SealedFile] | None],
                       machine: tuple[dict[str, Any] | None, dict[str, Any] | None]) -> None:
        """Locust has exited: when and how the load ended (time, status, the part at fault), the three counts, the
        sealed samples (the folder's relative path, its files with rows and sha256) and what else the machine did
        meanwhile (interference, Locust's own CPU)."""
        entry = self.manifest.scenarios[name]
        (entry.ended_at, entry.status, entry.fault), entry.counts = ended, counts
        entry.samples_file, entry.samples_files = samples
        entry.interference, entry.generator_cpu = machine
        self._save()

    def scenario_checked(self, name: str, audit: dict[str, Any] | None, reconciliation: dict[str, Any] | None,
                         skipped: str | None) -> None:
        """After the audit and the reconciliation, or why they were skipped (then the run is NO-GO)."""
        entry = self.manifest.scenarios[name]
        entry.audit, entry.reconciliation, entry.integrity_skipped = audit, reconciliation, skipped
        self._save()

    def load_ended(self, table_stats: dict[str, Any]) -> None:
        """The table counters after the last scenario (only when they were read before it)."""
        if self.manifest.table_stats is not None:
            self.manifest.table_stats["after"] = table_stats
            self._save()

    def cleaned_up(self, rule: Cleanup) -> None:
        self.manifest.cleanup = rule
        self._save()

    def finished(self, status: RunStatus, reason: str | None, cleanup_problems: list[str]) -> None:
        """The end, on every path out: scenarios never started say so, and clean-up problems sit beside the reason,
        never in its place."""
        m = self.manifest
        for entry in m.scenarios.values():
            if entry.status == "planned":
                entry.status = "not run"
        m.cleanup_problems = cleanup_problems
        m.status, m.reason, m.ended_at = status, reason, now_iso()
        self._save()
