"""Drive wrk (HTTP, through the service) and pgbench (SQL, straight to PostgreSQL) with the same booking draw."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from bookbench.config.dataset import DatasetParams, api_key
from bookbench.db.embedded import bin_dir

HERE = Path(__file__).resolve().parent
WRK_SCRIPT = HERE / "wrk_booking.lua"
PGBENCH_SCRIPT = HERE / "pgbench_booking.sql"
_WRK_MARK = "BOOKBENCH_WRK "


@dataclass(frozen=True)
class Draw:
    """What both scripts draw from: ids laid out round-robin over orgs, and a day window ahead of today."""

    orgs: int
    providers_per_org: int
    contacts_per_org: int
    base_epoch: int
    day_min: int = 130
    day_max: int = 700

    @classmethod
    def of(cls, params: DatasetParams) -> Draw:
        today = dt.datetime.now(dt.UTC).date()
        midnight = dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC)
        # the last org has the fewest ids when the counts do not divide evenly: stay inside every org's range
        return cls(orgs=params.orgs, providers_per_org=len(params.providers_of(params.orgs)),
                   contacts_per_org=len(params.contacts_of(params.orgs)), base_epoch=int(midnight.timestamp()))

    def variables(self) -> dict[str, int]:
        return {"orgs": self.orgs, "providers_per_org": self.providers_per_org,
                "contacts_per_org": self.contacts_per_org, "base_epoch": self.base_epoch,
                "day_min": self.day_min, "day_max": self.day_max}


@dataclass(frozen=True)
class LoadResult:
    """One measured run: successful requests over the run's own duration, errors, and latency in ms."""

    tool: str
    seconds: float
    ok: int
    errors: int
    detail: str
    latency_ms: dict[str, float]

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    def line(self) -> str:
        lat = "  ".join(f"{k}={v:.2f}" for k, v in self.latency_ms.items())
        return (f"{self.tool:16s} {self.rps:9.1f} rps  ok={self.ok} errors={self.errors} ({self.detail})  "
                f"latency ms: {lat}")


def wrk_script(draw: Draw, dest: Path) -> Path:
    """The Lua script with its globals prepended: API keys are computed here so Lua needs no sha256."""
    keys = ", ".join(f'[{org}] = "Bearer {api_key(org)}"' for org in range(1, draw.orgs + 1))
    prelude = [f"KEYS = {{ {keys} }}"]
    prelude += [f"{name.upper()} = {value}" for name, value in draw.variables().items()]
    dest.write_text("\n".join(prelude) + "\n" + WRK_SCRIPT.read_text())
    return dest


def run_wrk(base_url: str, script: Path, connections: int, threads: int, seconds: int) -> LoadResult:
    wrk = shutil.which("wrk")
    assert wrk is not None
    cmd = [wrk, "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
           "-s", str(script), base_url]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=seconds + 60).stdout
    line = next((ln for ln in out.splitlines() if ln.startswith(_WRK_MARK)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary line:\n{out}")
    r = json.loads(line[len(_WRK_MARK):])
    socket_errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
    detail = (f"201={r['s201']} 409={r['s409']} other_status={r['other_status']} "
              f"socket_errors={socket_errors}")
    latency = {"p50": r["p50_us"] / 1000, "p90": r["p90_us"] / 1000, "p99": r["p99_us"] / 1000,
               "max": r["max_us"] / 1000, "mean": r["mean_us"] / 1000}
    return LoadResult("service", r["duration_us"] / 1e6, r["s201"] + r["s409"], r["other_status"] + socket_errors,
                      detail, latency)


def run_pgbench(dsn: str, draw: Draw, clients: int, threads: int, seconds: int, log_dir: Path,
                protocol: str = "simple") -> LoadResult:
    """pgbench with `-M protocol`: simple is pgbench's default; prepared is what asyncpg does (~15% faster here)."""
    prefix = log_dir / "pgbench_log"
    for old in log_dir.glob("pgbench_log*"):
        old.unlink()
    cmd = [str(bin_dir() / "pgbench"), "-n", "-c", str(clients), "-j", str(threads), "-T", str(seconds),
           "-M", protocol, "-f", str(PGBENCH_SCRIPT), "-l", "--log-prefix", str(prefix)]
    for name, value in draw.variables().items():
        cmd += ["-D", f"{name}={value}"]
    # pgbench takes a connection URI where the database name goes
    out = subprocess.run([*cmd, dsn], check=True, capture_output=True, text=True, timeout=seconds + 60).stdout
    fields = _pgbench_fields(out)
    # per-transaction log: "client_id transaction_no latency_us script_no epoch epoch_us"
    lat_us = sorted(int(ln.split()[2]) for f in log_dir.glob("pgbench_log*") for ln in f.read_text().splitlines())
    latency = {p: _percentile(lat_us, q) / 1000 for p, q in (("p50", 50), ("p90", 90), ("p99", 99))}
    latency["max"] = lat_us[-1] / 1000 if lat_us else 0.0
    latency["mean"] = sum(lat_us) / len(lat_us) / 1000 if lat_us else 0.0
    ok = int(fields["number of transactions actually processed"].split("/")[0])
    failed = int(fields.get("number of failed transactions", "0").split()[0])
    tps = float(fields["tps"].split()[0])
    # tps excludes connection time; express it as ok / seconds so rps reads like wrk's
    return LoadResult(f"pgbench/{protocol}", ok / tps if tps else float(seconds), ok, failed, f"tps={tps:.1f}", latency)


def busy_cores(interval_s: float = 1.0) -> float:
    """Cores busy on the whole machine over `interval_s` (from /proc/stat; 0.0 where there is none)."""
    stat = Path("/proc/stat")
    if not stat.exists():
        return 0.0

    def busy_ticks() -> int:
        ticks = [int(x) for x in stat.read_text().splitlines()[0].split()[1:]]
        return sum(ticks) - ticks[3] - ticks[4]  # everything but idle and iowait

    before = busy_ticks()
    time.sleep(interval_s)
    return (busy_ticks() - before) / (os.sysconf("SC_CLK_TCK") * interval_s)


def _pgbench_fields(out: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for ln in out.splitlines():
        key, sep, value = ln.partition(" = " if " = " in ln else ": ")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def _percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return 0.0
    return float(sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q / 100))])
