"""One embedded cluster, many commands: each bookbench command that uses the cluster holds a lease (a file naming
its pid and start time) for as long as it runs. The server is started by the first command that needs it and
stopped by the last one to leave, unless `bookbench db up` started it (then it runs until `db down`). Leases of
killed commands are recognised (their pid is gone or belongs to another process) and dropped."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from bookbench.artifacts.files import replace_atomically
from bookbench.db.embedded import EmbeddedPostgres

OWNER_FILE = "bookbench-owner"  # "commands": the last command stops the server; "db up": only `db down` does
LEASES = "leases"


@contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    """Serialise start/stop decisions between commands (an advisory lock on a file in the data folder)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with (data_dir / "cluster.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _alive(lease: Path) -> bool:
    try:
        data = json.loads(lease.read_text())
        return bool(abs(psutil.Process(int(data["pid"])).create_time() - float(data["started"])) < 1.0)
    except (OSError, ValueError, KeyError, psutil.Error):
        return False


def live_leases(data_dir: Path) -> list[int]:
    """Pids of live commands using the cluster; stale leases (killed commands) are removed on the way."""
    folder = data_dir / LEASES
    pids = []
    for lease in sorted(folder.glob("*.lease")) if folder.exists() else []:
        if _alive(lease):
            pids.append(int(lease.stem.split("-")[0]))
        else:
            lease.unlink(missing_ok=True)
    return pids


def _owner(pg: EmbeddedPostgres) -> str:
    path = pg.data_dir / OWNER_FILE
    return path.read_text().strip() if path.exists() else "db up"


def set_owner(pg: EmbeddedPostgres, owner: str) -> None:
    (pg.data_dir / OWNER_FILE).write_text(owner)


@contextmanager
def leased(data_dir: Path | None, database: str) -> Iterator[str]:
    """A DSN for `database` in the embedded cluster, held under this process's lease."""
    pg = EmbeddedPostgres(data_dir)
    me = psutil.Process(os.getpid())
    lease = pg.data_dir / LEASES / f"{me.pid}-{id(pg):x}.lease"
    with _locked(pg.data_dir):
        live_leases(pg.data_dir)
        # Owned by commands only if this start launched a new postmaster: a `db up` server that was merely slow to
        # answer (start() waits for it) must not be handed to the last command out.
        running = pg.postmaster_pid()
        if pg.start().pid != running:
            set_owner(pg, "commands")
        lease.parent.mkdir(exist_ok=True)
        # whole or absent: a reader without the lock (`bookbench db status`, a test) must never see a half-written
        # lease, which it would take for a dead command's and delete
        replace_atomically(lease, json.dumps({"pid": me.pid, "started": me.create_time()}))
    try:
        yield pg.create_database(database)
    finally:
        with _locked(pg.data_dir):
            lease.unlink(missing_ok=True)
            if not live_leases(pg.data_dir) and _owner(pg) == "commands":
                pg.stop()
