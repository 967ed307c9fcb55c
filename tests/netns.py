"""Run a command where nothing can leave the machine: a new network namespace with only loopback up (and, on
request, a hosts file of the test's own bind-mounted over /etc/hosts), under `strace -e trace=connect`, so a test
proves "refused" or "not followed" by what the process tried, never by a timeout."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

from tests.budget import budget

# never reachable from inside the namespace (no route but loopback), and TEST-NET-like outside it
FAR_ADDRESS = "10.255.255.1"
_CONNECT = re.compile(r'connect\(\d+, \{sa_family=AF_INET6?, sin6?_port=htons\((\d+)\), '
                      r'(?:sin_addr=inet_addr\("([^"]+)"\)|[^}]*inet_pton\(AF_INET6, "([^"]+)")')


@dataclass
class Isolated:
    proc: subprocess.CompletedProcess[str]
    connects: list[tuple[str, int]]  # every connect() any process of the command attempted: (address, port)

    def tried(self, address: str) -> list[tuple[str, int]]:
        return [c for c in self.connects if c[0] == address]


@cache
def _namespaces() -> str | None:
    """None when user + network + mount namespaces and strace work here, else why not."""
    for tool in ("unshare", "strace", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    probe = subprocess.run(["unshare", "-r", "-n", "-m", "sh", "-c", "ip link set lo up && strace -o /dev/null true"],
                           capture_output=True, text=True, timeout=budget(30))
    if probe.returncode != 0:
        return f"user/network/mount namespaces or ptrace are not allowed here: {probe.stderr.strip()[:200]}"
    return None


def require_namespaces() -> None:
    why = _namespaces()
    if why:
        pytest.skip(f"guard test needs an isolated network namespace: {why}")


def run_isolated(cmd: list[str], workdir: Path, hosts: str | None = None, timeout: float = 180,
                 env: dict[str, str] | None = None, cwd: Path | None = None) -> Isolated:
    """`cmd` in its own user + network (+ mount) namespace with only `lo` up, every connect() traced."""
    require_namespaces()
    trace = workdir / "connect.strace"
    script = "ip link set lo up || exit 97\n"
    if hosts is not None:
        hosts_file = workdir / "hosts"
        hosts_file.write_text(hosts)
        script += f"mount --bind '{hosts_file}' /etc/hosts || exit 98\n"
    script += f'exec strace -f -qq -e trace=connect -o "{trace}" "$@"\n'
    proc = subprocess.run(["unshare", "-r", "-n", *(["-m"] if hosts is not None else []), "sh", "-c", script,
                           "isolated", *cmd], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    assert proc.returncode not in (97, 98), f"namespace setup failed: {proc.stderr}"
    connects = []
    for line in trace.read_text().splitlines() if trace.exists() else []:
        found = _CONNECT.search(line)
        if found:
            connects.append((found.group(2) or found.group(3), int(found.group(1))))
    return Isolated(proc, connects)
