"""Bring up what a command needs: a database (embedded or --dsn) and the service as a uvicorn subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bookbench import net
from bookbench.db.cluster import leased
from bookbench.db.embedded import BIND_ATTEMPTS, DEFAULT_DB, address_in_use, free_port
from bookbench.errors import ServiceError

SERVICE_LOG_LINES = 20


@contextmanager
def database(dsn: str | None, data_dir: Path | None = None, name: str = DEFAULT_DB) -> Iterator[str]:
    """Yield a DSN: the given one, or a database `name` in the embedded cluster under this command's lease.

    The embedded server is stopped by the last command that leaves it, and never when `bookbench db up`
    started it, so two commands can share one cluster and nothing leaves a server behind.
    """
    if dsn:
        yield dsn
        return
    with leased(data_dir, name) as url:
        yield url


class ServiceProcess:
    """The reference service in its own uvicorn process on 127.0.0.1 and a free port."""

    def __init__(self, dsn: str, port: int | None = None, workers: int = 1, log_path: Path | None = None,
                 inherit_output: bool = False, extra_env: dict[str, str] | None = None) -> None:
        self.dsn = dsn
        self.chosen_port = port is None  # a port we picked may be retaken in between: then we pick another
        self.port = port or free_port()
        self.workers = workers
        self.inherit_output = inherit_output
        # a log file by default, so that a service that dies at start can say why (and whether its port was taken)
        self.log_path = log_path or Path(tempfile.gettempdir()) / f"bookbench-service-{self.port}.log"
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_handle: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> str:
        for _ in range(BIND_ATTEMPTS - 1):
            try:
                self._start_once(timeout)
                return self.base_url
            except ServiceError as exc:
                if not self.chosen_port or not address_in_use(str(exc)):
                    raise
                self.port = free_port()  # taken between free_port() and uvicorn's bind: another one
        self._start_once(timeout)
        return self.base_url

    def _start_once(self, timeout: float) -> None:
        env = {**os.environ, "BOOKBENCH_DATABASE_URL": self.dsn, **self.extra_env}
        cmd = [sys.executable, "-m", "uvicorn", "target_service.main:create_app", "--factory",
               "--host", "127.0.0.1", "--port", str(self.port), "--loop", "uvloop",
               # httptools with a deadline on reading a request's head (uvicorn has none): slow clients get a 408
               "--http", "target_service.protocol:HeaderDeadlineProtocol",
               "--no-access-log", "--log-level", "warning", "--workers", str(self.workers)]
        out: int | None = None
        if not self.inherit_output:
            self._log_handle = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            out = self._log_handle
        # own session: Ctrl-C in the terminal reaches us, and we stop the whole group ourselves
        self.proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=out, start_new_session=True)
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        code = wait_ready(self.proc, f"{self.base_url}/readyz", timeout)
        if code is None:
            return
        tail = self._output_tail()
        self.stop()  # closes the log file
        if code == "timeout":
            raise ServiceError(f"the service did not become ready within {timeout:.0f} s")
        raise ServiceError(f"the service exited with code {code} at start:\n{tail}")

    def _output_tail(self) -> str:
        if self.inherit_output or not self.log_path.exists():
            return "(see the output above)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-SERVICE_LOG_LINES:])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        stop_group(self.proc, timeout)
        if self._log_handle is not None:
            os.close(self._log_handle)
            self._log_handle = None
        self.proc = None


def wait_ready(proc: subprocess.Popen[bytes], url: str, timeout: float) -> int | str | None:
    """Poll `url` until it answers 200: None then; the exit code when the process ended first; "timeout"."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return proc.returncode
        try:
            if net.get(url, timeout=1.0).status_code == 200:
                return None
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    return "timeout"


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, then SIGCONT, to the process's own session (it was started with start_new_session); SIGKILL if it
    lingers.

    SIGCONT: a stopped process (SIGSTOP, a debugger, a hung-up job) keeps the TERM pending, so without it the
    process would only go by SIGKILL after the whole timeout, skipping its own clean-up. Sent after TERM, as
    systemd does, so that the process wakes with the TERM already there and runs nothing else first.
    """
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        os.killpg(proc.pid, signal.SIGCONT)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)
    except ProcessLookupError:
        pass


@contextmanager
def service(dsn: str, **kwargs: object) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(dsn, **kwargs)  # type: ignore[arg-type]
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()
