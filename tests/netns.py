"""Run a command where nothing can leave the machine: a new network namespace with only loopback up (and, on
request, a hosts file of the test's own bind-mounted over /etc/hosts), under `strace -e trace=connect`, so a test
proves "refused" or "not followed" by what the process tried, never by a timeout. And `lan()`: hosts on a private
wire, each a network namespace of its own, for a test whose processes must be different machines on the network."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
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


@cache
def _strace_filter() -> list[str]:
    """`--seccomp-bpf` where strace and the kernel have it: only connect() stops the traced processes, so a
    traced interpreter starts as fast as an untraced one (without it, every syscall of the imports stops it:
    bookbench's CLI started 35 % slower)."""
    probe = subprocess.run(["strace", "-f", "--seccomp-bpf", "-e", "trace=connect", "-o", "/dev/null", "true"],
                           capture_output=True, text=True, timeout=budget(30))
    return ["--seccomp-bpf"] if probe.returncode == 0 and "seccomp" not in probe.stderr else []


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
    script += f'exec strace -f -qq {" ".join(_strace_filter())} -e trace=connect -o "{trace}" "$@"\n'
    proc = subprocess.run(["unshare", "-r", "-n", *(["-m"] if hosts is not None else []), "sh", "-c", script,
                           "isolated", *cmd], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    assert proc.returncode not in (97, 98), f"namespace setup failed: {proc.stderr}"
    connects = []
    for line in trace.read_text().splitlines() if trace.exists() else []:
        found = _CONNECT.search(line)
        if found:
            connects.append((found.group(2) or found.group(3), int(found.group(1))))
    return Isolated(proc, connects)


# -- a private network of namespaces: hosts on one wire ---------------------------------------------------------
LAN_PREFIX = "10.200.0."  # private addresses, alive only inside the namespaces a test made


@dataclass(frozen=True)
class Host:
    """One machine on the test's wire: its own network namespace, one address on the bridge."""

    netns: str
    address: str

    @property
    def prefix(self) -> tuple[str, ...]:
        """What runs a command on this host."""
        return ("ip", "netns", "exec", self.netns)


@cache
def _lan_refused() -> str | None:
    """None when this process may create named network namespaces, a bridge and veth pairs, else why not."""
    if shutil.which("ip") is None:
        return "ip (iproute2) is not installed"
    if os.geteuid() != 0:
        return "creating network namespaces with `ip netns` needs root"
    probe = f"bbprobe{os.getpid()}"
    try:
        done = _ip(["netns", "add", probe], check=False)
        if done.returncode != 0:
            return f"`ip netns add` is not allowed here: {done.stderr.strip()[:200]}"
        done = _ip(["-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1"], check=False)
        if done.returncode != 0:
            return f"veth pairs cannot be created here: {done.stderr.strip()[:200]}"
        return None
    finally:
        _ip(["netns", "del", probe], check=False)


def _ip(args: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=budget(30))
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def require_lan() -> None:
    why = _lan_refused()
    if why:
        pytest.skip(f"needs hosts on a private wire (network namespaces made by the test): {why}")


@contextlib.contextmanager
def lan(names: list[str]) -> Iterator[dict[str, Host]]:
    """Hosts `names` (10.200.0.1, .2, ... in that order), each in a network namespace of its own, joined by a
    bridge in one more namespace: packets between them cross veth pairs and the bridge as between machines, and
    nothing reaches this machine's own network. Every namespace is deleted on the way out (their links with them)."""
    require_lan()
    tag = f"bb{os.getpid()}"  # unique per test process: parallel test processes get separate wires
    wire = f"{tag}-wire"
    made: list[str] = []
    try:
        _ip(["netns", "add", wire])
        made.append(wire)
        _ip(["-n", wire, "link", "add", "br0", "type", "bridge"])
        _ip(["-n", wire, "link", "set", "br0", "up"])
        hosts: dict[str, Host] = {}
        for i, name in enumerate(names, start=1):
            host = Host(f"{tag}-{name}", f"{LAN_PREFIX}{i}")
            _ip(["netns", "add", host.netns])
            made.append(host.netns)
            _ip(["-n", wire, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0", "netns", host.netns])
            _ip(["-n", wire, "link", "set", f"v{i}", "master", "br0", "up"])
            _ip(["-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0"])
            _ip(["-n", host.netns, "link", "set", "eth0", "up"])
            _ip(["-n", host.netns, "link", "set", "lo", "up"])
            hosts[name] = host
        yield hosts
    finally:
        for ns in reversed(made):
            # deleting a namespace does not stop what runs in it (a worker's Locust child, a master left by a
            # timeout): killed first, so no process outlives the test
            pids = _ip(["netns", "pids", ns], check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            _ip(["netns", "del", ns], check=False)
