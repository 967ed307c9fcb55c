"""Run folders: their names and the place of every file in one, so no other module builds a path by hand."""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from pathlib import Path

from bookbench.artifacts.notifications import received_file
from bookbench.errors import UsageError

RUN_SUBFOLDERS = ("samples", "locust", "db", "logs", "config", "explain", "notifications")


def new_folder(out: Path, kind: str, subfolders: tuple[str, ...] = ()) -> Path:
    """`<out>/<kind>-<UTC time>-<4 hex>` (a run's kind is its index set), created with its subfolders.

    A folder that cannot be created (read-only --out, a file in the way) is a usage error naming the option."""
    folder = out / f"{kind}-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"
    try:
        folder.mkdir(parents=True)
        for sub in subfolders:
            (folder / sub).mkdir()
        probe = folder / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise UsageError(f"--out {out}: cannot create a folder there ({exc.strerror})") from None
    return folder


@dataclass(frozen=True)
class RunFolder:
    """Where each artifact of one run lives (see the README's run-folder table)."""

    root: Path

    @property
    def run_id(self) -> str:
        return self.root.name

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def checks(self) -> Path:
        return self.root / "checks.json"

    @property
    def explain_dir(self) -> Path:
        return self.root / "explain"

    @property
    def log(self) -> Path:
        """bookbench's own log: tracebacks of unexpected errors go here, never to the terminal."""
        return self.root / "logs" / "bookbench.log"

    def samples(self, scenario: str) -> Path:
        """Samples format 1/2: one CSV.gz file per scenario (runs before issue 28, and `bookbench export --csv`)."""
        return self.root / "samples" / f"{scenario}.csv.gz"

    def sample_parts(self, scenario: str) -> Path:
        """Samples format 3: the scenario's folder of Parquet files, one series per load process."""
        return self.root / "samples" / scenario

    def sample_parts_rel(self, scenario: str) -> str:
        return f"samples/{scenario}"

    def dropped(self, scenario: str) -> Path:
        """Open model: intended send times of arrivals that found no free capacity, one per line."""
        return self.root / "samples" / f"{scenario}_dropped.txt"

    def writer_failure(self, scenario: str) -> Path:
        """Why Locust's samples writer failed (one line), prepared blank at its start: see samples.WriteFailed."""
        return self.root / "logs" / f"locust_{scenario}_writer_failure.txt"

    def progress(self, scenario: str) -> Path:
        return self.root / "logs" / f"progress_{scenario}.json"

    def acknowledged(self, scenario: str) -> Path:
        return self.root / "db" / f"{scenario}_acknowledged_bookings.txt"

    def attempts(self, scenario: str) -> Path:
        """Every booking the load sent, "contact provider start" per line: how new rows are attributed to a run."""
        return self.root / "db" / f"{scenario}_booking_attempts.txt"

    @property
    def notifications_dir(self) -> Path:
        return self.root / "notifications"

    def notifications(self, scenario: str) -> Path:
        return self.root / "notifications" / f"{scenario}.json"

    def received(self, provider: str) -> Path:
        """Every message the fake `provider` (sms, calendar) accepted during the run, with its receive time."""
        return received_file(self.notifications_dir, provider)

    def index_stats(self, when: str) -> Path:
        """pg_stat_user_indexes snapshot; `when` is "before" or a scenario name (after it)."""
        return self.root / "db" / f"{when}_pg_stat_user_indexes.json"

    @property
    def statements(self) -> Path:
        """Per scenario, what each statement cost in the measured window (pg_stat_statements deltas)."""
        return self.root / "db" / "statements.json"

    @property
    def waits(self) -> Path:
        """Per scenario, the sampled wait events of the service's backends and the service's own timing."""
        return self.root / "db" / "waits.json"

    def auto_explain(self, scenario: str) -> Path:
        """The plans auto_explain logged for statements slower than its threshold during the scenario."""
        return self.root / "db" / f"{scenario}_auto_explain.jsonl"

    def locust_prefix(self, scenario: str) -> Path:
        return self.root / "locust" / scenario

    def locust_json(self, scenario: str) -> Path:
        return self.root / "locust" / f"{scenario}.json"

    def config(self, scenario: str) -> Path:
        return self.root / "config" / f"{scenario}.json"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


def existing_run(path: Path) -> RunFolder:
    """A folder the user named as a run folder: it must hold a manifest."""
    if not (path / "manifest.json").is_file():
        raise UsageError(f"{path} is not a run folder (no manifest.json)")
    return RunFolder(path)
