"""Benchmark: Path B's analysis at soak scale (issue 28: memory bounded by groups, not by messages).

1. A synthetic scenario of 1M outbox rows (bookings' SMS and calendar events, a tenth cancelled), the providers'
   records of them (some redelivered, some never received, a last line cut short) and the acknowledged bookings:
   wall time and peak RSS of the notifications summary alone, in a process of its own, from format-2 facts and from
   the same facts in format 1. BOOKBENCH_BENCH_NOTIFY_ROWS changes the size.
2. With BOOKBENCH_BENCH_SOAK=<a run folder> (the 30-minute soak: 525,496 messages, format-1 facts), `bookbench
   report` on a copy of it, and on a copy whose facts were rewritten in format 2.

With BOOKBENCH_BENCH_OLD=<a checkout of the code before format 2> (`git worktree add /tmp/old ece3cb7`) the same
is measured with that code, and its figures must equal ours exactly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.goals import goal
from benchmarks.test_analysis_scale import Measured, report
from bookbench.artifacts import notifications as facts_file
from bookbench.artifacts.notifications import NotificationFacts, OutboxFile

ROWS = int(os.environ.get("BOOKBENCH_BENCH_NOTIFY_ROWS", "1000000"))
T0 = 1_800_000_000.0
RATE = 300.0  # bookings a second: 1M rows make a half-hour soak
# the bound for a report of 10M samples, whatever the number of messages: the engine holds at most
# BOOKBENCH_SCAN_MEMORY (512 MB) and spills the rest, the interpreter and its libraries take about 200 MB
GOAL_RSS_MB = 1024.0

# the summary as the code before format 2 computed it (summarize.py's call site at ece3cb7) ...
OLD = """
import sys
from pathlib import Path
from bookbench.analysis import notifications as n
from bookbench.artifacts import notifications as f
from bookbench.artifacts.run_files import read_acknowledged_times
d = Path(sys.argv[1])
received = [r for p in n.CHANNELS for r in f.read_received(d / f"received_{p}.jsonl")]
out = n.summarize(f.read(d / sys.argv[2]), received, read_acknowledged_times(d / "acked.txt"))
print(out.model_dump_json())
"""
# ... and as it is now
NEW = """
import sys
from pathlib import Path
from bookbench.analysis import notifications as n
d = Path(sys.argv[1])
out = n.summarize(d / sys.argv[2], [d / f"received_{p}.jsonl" for p in n.CHANNELS], d / "acked.txt")
print(out.model_dump_json())
"""


def build(folder: Path, rows: int) -> None:
    """`v2.json` (format 2, its rows in `v2_outbox.parquet`), `v1.json` (the same facts in format 1), the providers'
    records and the acknowledged bookings, for a scenario of about `rows` outbox rows."""
    rng = np.random.default_rng(28)
    bookings = int(rows / 2.2)
    cancels = (rows - 2 * bookings) // 2
    created = T0 + np.arange(bookings) / RATE
    acked = created + rng.uniform(0.001, 0.02, bookings)
    header = NotificationFacts(
        scenario="bench", dispatchers=2, faults={"sms": {"outages": []}, "calendar": {"outages": []}},
        load_start=T0, load_end=T0 + bookings / RATE, drain_timeout_s=30.0, drained_at=T0 + bookings / RATE + 3,
        backlog=[(T0 + s, int(rng.integers(0, 200))) for s in range(int(bookings / RATE))],
        breaker=[], outbox=OutboxFile(file="v2_outbox.parquet", rows=0))
    with (folder / "acked.txt").open("w") as fh:
        fh.writelines(f"{i} {t!r}\n" for i, t in enumerate(acked.tolist(), 1))
    v1 = (folder / "v1.json").open("w")
    # format 1: the header's fields, then the rows as they are made (the JSON never held by this process either)
    fields = {**header.model_dump(mode="json", exclude={"outbox"}), "format_version": 1}
    v1.write(json.dumps(fields, indent=1)[:-2] + ',\n "outbox": [')
    sms, calendar = (folder / "received_sms.jsonl").open("w"), (folder / "received_calendar.jsonl").open("w")
    delays = rng.lognormal(np.log(0.2), 0.6, 2 * (bookings + cancels)).tolist()
    first = True
    with facts_file.OutboxWriter(folder / "v2_outbox.parquet") as writer:
        batch: list[dict[str, Any]] = []
        for i in range(bookings + cancels):
            appt = i + 1 if i < bookings else i - bookings + 1
            at = float(created[i]) if i < bookings else float(created[appt - 1]) + 60.0
            kinds = (("confirm", "insert") if i < bookings else ("cancel", "delete"))
            for j, (channel, kind, out) in enumerate(zip(("sms", "calendar"), kinds, (sms, calendar), strict=True)):
                key = f"{'sms' if channel == 'sms' else 'bb'}-{kind}-{appt}"
                row = {"appointment_id": appt, "channel": channel, "kind": kind, "dedup_key": key,
                       "created_at": at, "status": "sent", "attempts": 1 + (i % 50 == 0), "sent_at": at + 0.1,
                       "conflict": i % 997 == 0, "last_error": None}
                batch.append(row)
                v1.write(("" if first else ",") + json.dumps(row))
                first = False
                if i % 1000 == 999:
                    continue  # never received: lost
                t = at + delays[2 * i + j]
                out.write(f'{{"t": {t!r}, "channel": "{channel}", "op": "{kind}", "key": "{key}", '
                          f'"body": "Booked: appointment {appt} on 2027-01-21 12:00 UTC"}}\n')
                if i % 200 == 0:
                    out.write(f'{{"t": {t + 1.5!r}, "channel": "{channel}", "key": "{key}", "redelivery": true}}\n')
            if len(batch) >= facts_file.BATCH_ROWS:
                writer.write(batch)
                batch = []
        writer.write(batch)
    v1.write("]\n}\n")
    v1.close()
    sms.write('{"t": 1800000000.5, "channel": "sms", "key": "sms-con')  # a provider killed mid-line
    sms.close()
    calendar.close()
    facts_file.write(folder / "v2.json", header.model_copy(update={
        "outbox": OutboxFile(file="v2_outbox.parquet", rows=writer.rows)}))


def timed(args: list[str], tree: Path | None = None, cwd: Path | None = None) -> tuple[Measured, str]:
    """`python ARGS` in its own process under /usr/bin/time: wall time, peak RSS and its output. `tree`: another
    checkout whose code runs instead."""
    env = {**os.environ, "PYTHONPATH": str(tree)} if tree else dict(os.environ)
    start = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-v", sys.executable, *args], capture_output=True, text=True, env=env,
                          cwd=tree or cwd, timeout=3600)
    seconds = time.perf_counter() - start
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    assert found is not None, done.stderr[-2000:]
    return Measured(seconds, int(found.group(1)) / 1024), done.stdout


def _line(label: str, m: Measured) -> str:
    return f"  {label:<34} {m.seconds:7.1f} s, peak RSS {m.rss_mb:6.0f} MB"


def test_notifications_summary_at_scale(tmp_path: Path) -> None:
    build(tmp_path, ROWS)
    here = Path(__file__).resolve().parents[1]
    print(f"\n(machine shared with other jobs: figures are not an idle machine's) {ROWS:,} outbox rows")
    new2, out2 = timed(["-c", NEW, str(tmp_path), "v2.json"], cwd=here)
    new1, out1 = timed(["-c", NEW, str(tmp_path), "v1.json"], cwd=here)
    print(_line("new, format 2", new2) + "\n" + _line("new, format 1", new1))
    assert json.loads(out1) == json.loads(out2)
    old_tree = os.environ.get("BOOKBENCH_BENCH_OLD")
    if old_tree:
        old, out_old = timed(["-c", OLD, str(tmp_path), "v1.json"], Path(old_tree))
        print(_line("old (format 1)", old))
        assert json.loads(out_old) == json.loads(out2), "the figures differ from the old code's"
    goal(f"notifications summary of {ROWS:,} messages, peak RSS", new2.rss_mb, "<=", GOAL_RSS_MB, " MB")


def as_format_2(run: Path) -> None:
    """Rewrite every format-1 facts file of a run folder in format 2 (its rows to Parquet beside it)."""
    for path in sorted((run / "notifications").glob("*.json")):
        with tempfile.TemporaryDirectory() as scratch:
            facts = facts_file.read(path, Path(scratch))
            if facts.format_version == 2:
                continue
            rows = facts_file.outbox_file(path)
            shutil.move(facts_file.outbox_path(path, facts), rows)
        facts_file.write(path, facts.model_copy(update={
            "format_version": 2, "outbox": OutboxFile(file=rows.name, rows=facts.outbox.rows)}))


@pytest.mark.skipif(not os.environ.get("BOOKBENCH_BENCH_SOAK"), reason="BOOKBENCH_BENCH_SOAK names no soak folder")
def test_report_of_the_soak(tmp_path: Path) -> None:
    soak = Path(os.environ["BOOKBENCH_BENCH_SOAK"])
    print("\n(machine shared with other jobs: figures are not an idle machine's)")
    figures = {}
    for label, tree, fmt in (("old", os.environ.get("BOOKBENCH_BENCH_OLD"), 1), ("new", None, 1), ("new", None, 2)):
        if label == "old" and not tree:
            continue
        run = tmp_path / f"{label}{fmt}"
        shutil.copytree(soak, run)
        if fmt == 2:
            as_format_2(run)
        m = report(run, Path(tree) if tree else None)
        print(_line(f"bookbench report, {label}, format {fmt}", m))
        figures[(label, fmt)] = {k: v["notifications"] for k, v in
                                 json.loads((run / "summary.json").read_text())["scenarios"].items()}
        shutil.rmtree(run)
    assert all(f == figures[("new", 1)] for f in figures.values()), "the notifications figures differ"
