"""The database side of a run: whether it may seed, which indexes it applies, the integrity checks after each
scenario, and the clean-up of exactly the rows it made. A mixin of pipeline.run.Run, kept apart because these are
the rules that protect a database bookbench did not create (issue 21)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bookbench.artifacts import run_files
from bookbench.artifacts.folder import RunFolder
from bookbench.artifacts.manifest import Cleanup, IndexInfo, Manifest, ScenarioEntry
from bookbench.config.dataset import DatasetParams
from bookbench.config.dsn import mask_dsn
from bookbench.db import audit, indexes
from bookbench.db.conn import run_with
from bookbench.db.seed import database_state, seed, table_stats
from bookbench.errors import DatabaseError, UsageError
from bookbench.pipeline import facts, interrupts
from bookbench.pipeline.narration import Narrator, failure, say, warning
from bookbench.pipeline.run_state import RunState

if TYPE_CHECKING:
    from bookbench.pipeline.run_plan import RunPlan
    from bookbench.target.client import Target


class RunDatabase:
    """What Run provides: its plan, manifest (and state, its one writer), folder, narrator, the bound target and the
    ids it made."""

    plan: RunPlan
    manifest: Manifest
    state: RunState
    folder: RunFolder
    narrate: Narrator
    target: Target
    own_ids: list[int]
    deleted_ids: set[int]
    rows_deleted: int

    @property
    def params(self) -> DatasetParams:
        return self.plan.params

    def prepare_database(self, dsn: str) -> None:
        """Dataset and indexes under the rules for whose database it is (see _dataset_step); what the indexes were
        before and after, and what bookbench changed, goes into the manifest."""
        role = self._dataset_step(dsn)
        self.state.database_chosen(role)  # the clean-up rule reads it, on every path out from here
        removed = 0
        if role == "embedded":
            # bookbench's own sandbox (under the database lease): every run starts from the generated dataset
            removed = run_with(dsn, lambda conn: audit.reset_bookings(conn, self.plan.params.appointments))
        before = [s.name for s in run_with(dsn, indexes.status)]
        info = self.manifest.index_set
        info.applied, info.before = self.plan.apply_indexes, before
        if self.plan.apply_indexes:
            applied = run_with(dsn, lambda conn: indexes.apply(conn, self.plan.index_set))
            info.created, info.dropped = applied.created, applied.dropped
            self.narrate(say(f"index set {self.plan.index_set}: +{len(applied.created)} -{len(applied.dropped)}"
                             + (f" ({removed} bookings of earlier runs removed)" if removed else "")))
        else:
            self.narrate(say(f"indexes left as found ({len(before)}: {', '.join(before) or 'none'}); name "
                             "--index-set to change them"))
        status = run_with(dsn, indexes.status)
        info.after = [s.name for s in status]
        if info.created or info.dropped:
            self.narrate(say(f"  bookbench changed this database's indexes: before {', '.join(before) or 'none'}"
                             f"; after {', '.join(info.after) or 'none'}"))
        counts, sizes = run_with(dsn, table_stats)
        info.indexes = [
            IndexInfo(name=s.name, table=s.table, size_bytes=s.size_bytes, definition=s.definition) for s in status]
        info.all_indexes = run_with(dsn, indexes.definitions)
        self.state.database_prepared(info, counts, sizes, run_with(dsn, facts.postgres_facts))

    def _dataset_step(self, dsn: str) -> str:
        """Seed only what bookbench may: its own database; an empty --dsn database; a --dsn database that holds
        the same bookbench dataset is reused. A deployment's database (--target-url) is never seeded, and a
        database with other data is refused before anything is written. Returns the database's role."""
        opts, where = self.plan.opts, mask_dsn(dsn)
        state = run_with(dsn, database_state)
        same = state.fingerprint() == self.plan.params.fingerprint()
        if opts.target_url:
            if not state.has_tables:
                raise UsageError(f"--dsn {where} has no appointments table: bookbench audits a deployment's "
                                 "database only when it has the reference schema")
            if not same:
                self.narrate(warning("the deployment's database does not hold bookbench's dataset with these "
                                     "parameters: ids the load uses may not exist there (nothing was seeded)"))
            return "deployment"
        if not self.plan.own_database and state.has_rows and not same:
            if state.dataset is not None and opts.reseed:
                self.narrate(warning(f"replacing the bookbench dataset in {where}"))
            elif state.dataset is not None:
                raise UsageError(
                    f"--dsn {where} holds another bookbench dataset ({state.dataset.get('params')}); a run never "
                    "re-seeds over it: pass the same dataset options, or replace it with `bookbench db seed "
                    "--force --dsn ... --yes`")
            else:
                raise UsageError(f"--dsn {where} holds data bookbench did not seed; bookbench will not seed over "
                                 "it (to load your own service on it, add --target-url; otherwise give an empty "
                                 "database)")
        params = self.plan.params
        self.narrate(say(f"dataset: {params.appointments:,} appointments (seed {params.seed}) ..."))
        report = run_with(dsn, lambda conn: seed(conn, self.plan.params))
        self.narrate(say(f"  {'reused' if report.reused else 'generated'} in {report.seconds:.1f} s"))
        self.manifest.dataset.reused = report.reused
        self.manifest.dataset.seed_seconds = round(report.seconds, 3)
        if self.plan.own_database:
            return "embedded"
        return "reused" if report.reused else "seeded"

    def cleanup_rule(self) -> Cleanup:
        """Deleting is allowed on a database bookbench seeded (its own, or one whose dataset it wrote), and
        elsewhere only with --cleanup; even then only the rows this run can prove it made."""
        role, asked = self.manifest.database_role, self.plan.opts.cleanup
        if role in ("embedded", "seeded", "reused"):
            return Cleanup(allowed=True, why=f"a database bookbench seeded ({role})")
        if asked:
            return Cleanup(allowed=True, why="--cleanup given")
        return Cleanup(allowed=False, why="a database bookbench did not seed: its rows are left in place "
                                          "(--cleanup deletes exactly the run's own bookings)")

    def _deletable(self) -> list[int]:
        """The run's own bookings not deleted yet, when the rule allows deleting them; else none."""
        return sorted(set(self.own_ids) - self.deleted_ids) if self.cleanup_rule().allowed else []

    def clean_up(self, dsn: str) -> None:
        """At the end of the run, on every path out: delete this run's own bookings where the rule allows."""
        rule = self.cleanup_rule()
        rule.own_rows = len(set(self.own_ids))
        ids = self._deletable()
        try:
            if ids:
                self.rows_deleted += run_with(dsn, lambda conn: audit.delete_own(conn, ids))
                self.deleted_ids.update(ids)
        except DatabaseError as exc:
            rule.why += f"; not done: {exc}"
        rule.deleted = self.rows_deleted
        self.state.cleaned_up(rule)
        if rule.own_rows:
            done = f"{rule.deleted:,} deleted" if rule.allowed else "left in place"
            self.narrate(say(f"clean-up: {rule.own_rows:,} bookings made by this run, {done} ({rule.why})"))

    def _integrity(self, name: str, entry: ScenarioEntry, dsn: str, id_before: int) -> None:
        """The audit and the reconciliation, on every path out of a scenario; when they cannot run, the entry
        says why and the decision is NO-GO (a run whose bookings were not checked is not a GO)."""
        checked: tuple[dict[str, Any] | None, dict[str, Any] | None] = (None, None)
        skipped: str | None = None
        if interrupts.skip_integrity():
            skipped = "skipped at the user's request (Ctrl-C pressed three times)"
        elif entry.fault == "database":
            skipped = "the database stopped answering"
        else:
            try:
                answered = run_files.read_acknowledged_text(self.folder.acknowledged(name))
                acked = [i for i in (self.target.row_id(a) for a in answered) if i is not None]
                attempts = run_files.read_attempts(self.folder.attempts(name))
                self.own_ids.extend(acked)
                cols = self.target.audit_columns()
                found = run_with(dsn, lambda c: audit.audit(c, cols))
                checked = (found, None)  # recorded even when the reconciliation then fails
                recon = run_with(dsn, lambda c: audit.reconcile(c, acked, id_before, attempts, cols))
                if len(acked) < len(answered):
                    recon["unreadable_ids"] = len(answered) - len(acked)
                    recon["ok"] = False  # an acknowledged booking bookbench cannot find is not reconciled
                self.own_ids.extend(recon.pop("phantom_all"))
                checked = (found, recon)
                run_files.write_rows(self.folder.index_stats(name), run_with(dsn, audit.index_stats))
            except DatabaseError as exc:
                skipped = f"could not run: {exc}"
        self.state.scenario_checked(name, *checked, skipped)
        if skipped:
            self.narrate(failure(f"  {name}: audit and reconciliation not run: {skipped}"))
