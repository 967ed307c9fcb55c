"""The PostgREST-style test target in its own process on 127.0.0.1 and a free port: start, wait ready, stop."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType

from bookbench.db.embedded import BIND_ATTEMPTS, address_in_use, free_port
from bookbench.errors import ServiceError
from bookbench.fakes.postgrest import (
    DEFAULT_ANON_KEY,
    DEFAULT_JWT_SECRET,
    DEFAULT_TOKEN_TTL_S,
    ENV_ANON_KEY,
    ENV_DSN,
    ENV_JWT_SECRET,
)
from bookbench.pipeline.stack import stop_group, wait_ready

LOG_TAIL_LINES = 20


class PostgrestProcess:
    """`with PostgrestProcess(dsn) as api: httpx.post(api.base_url + "/auth/v1/token?grant_type=password", ...)`."""

    def __init__(self, dsn: str, jwt_secret: str = DEFAULT_JWT_SECRET, anon_key: str = DEFAULT_ANON_KEY,
                 token_ttl_s: int = DEFAULT_TOKEN_TTL_S, port: int | None = None, pool_size: int = 10,
                 log_path: Path | None = None) -> None:
        self.dsn = dsn
        self.jwt_secret = jwt_secret
        self.anon_key = anon_key
        self.token_ttl_s = token_ttl_s
        self.pool_size = pool_size
        self.chosen_port = port is None  # a port we picked may be taken before uvicorn binds it: then another
        self.port = port or free_port()
        self.log_path = log_path or Path(tempfile.gettempdir()) / f"bookbench-postgrest-{os.getpid()}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> str:
        """Start and wait until /healthz answers (the database reached); the base URL, e.g. http://127.0.0.1:N."""
        for attempt in range(BIND_ATTEMPTS):
            try:
                self._start_once(timeout)
                return self.base_url
            except ServiceError as exc:
                if attempt == BIND_ATTEMPTS - 1 or not self.chosen_port or not address_in_use(str(exc)):
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> None:
        # secrets through the environment, not the command line that every local user can list
        env = {**os.environ, ENV_DSN: self.dsn, ENV_JWT_SECRET: self.jwt_secret, ENV_ANON_KEY: self.anon_key}
        cmd = [sys.executable, "-m", "bookbench.fakes.postgrest", "--host", "127.0.0.1", "--port", str(self.port),
               "--token-ttl-s", str(self.token_ttl_s), "--pool-size", str(self.pool_size)]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True)
        code = wait_ready(self.proc, f"{self.base_url}/healthz", timeout)
        if code is None:
            return
        self.stop()
        if code == "timeout":
            raise ServiceError(f"the PostgREST-style target did not become ready within {timeout:.0f} s:\n"
                               f"{self._tail()}")
        raise ServiceError(f"the PostgREST-style target exited with code {code} at start:\n{self._tail()}")

    def _tail(self) -> str:
        if not self.log_path.exists():
            return "(no output)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        stop_group(proc, timeout)  # its own session: the signal reaches uvicorn and anything it started

    def __enter__(self) -> PostgrestProcess:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
