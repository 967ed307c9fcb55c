"""Benchmark: notification deliveries per second against the service's booking rate (Path B).

1. Drain rate: 3,000 notifications queued at once, delivered by 1 and by 2 dispatchers to the fake providers
   (default latencies: SMS median 60 ms, calendar 90 ms), nothing else running.
2. Under load: `bookbench run --scenarios burst --index-set recommended` (100k appointments): bookings
   acknowledged per second against deliveries per second during the load, the peak backlog and the drain time.
   Prints the ratio; the outbox stays bounded only if deliveries keep up with bookings on average.

Prints measured figures; never gates on a timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bookbench.config.notifications import NotificationSpec
from bookbench.db import notifications as outbox
from bookbench.db.conn import run_with
from bookbench.pipeline.notify import NotifyStack
from bookbench.pipeline.stack import database

pytestmark = [pytest.mark.bench, pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(1800)]
N = 1500  # appointments: one SMS and one calendar event each

FILL = """
INSERT INTO notification_outbox (appointment_id, org_id, channel, kind, dedup_key, payload)
SELECT 90000000 + g, 1, 'sms', 'confirm', 'bench-sms-' || g, jsonb_build_object('to', '+15550000000', 'body', 'b' || g)
  FROM generate_series(1, $1) g
UNION ALL
SELECT 90000000 + g, 1, 'calendar', 'insert', 'bbbench' || g,
       jsonb_build_object('calendar_id', 'provider-' || (g % 50), 'event_id', 'bbbench' || g,
                          'start', now() + make_interval(mins => g * 30),
                          'end', now() + make_interval(mins => g * 30 + 30), 'summary', 'bench')
  FROM generate_series(1, $1) g
"""


@pytest.mark.parametrize("dispatchers", [1, 2])
def test_drain_rate(dispatchers: int, tmp_path: Path) -> None:
    with database(None, None) as dsn:
        run_with(dsn, outbox.reset)
        stack = NotifyStack(dsn, dispatchers, tmp_path / "logs", tmp_path / "rec")
        stack.start()
        try:
            stack.set_faults(NotificationSpec().providers)
            started = time.monotonic()
            run_with(dsn, lambda c: c.execute(FILL, N))
            run_with(dsn, lambda c: c.execute("SELECT pg_notify('bookbench_outbox', '')"))
            while run_with(dsn, lambda c: outbox.pending(c, 0)) and time.monotonic() - started < 300:
                time.sleep(0.25)
            took = time.monotonic() - started
        finally:
            stack.stop()
            run_with(dsn, outbox.reset)
    print(f"\n{dispatchers} dispatcher(s): {2 * N:,} notifications in {took:.1f} s = {2 * N / took:.0f} per second")


def test_deliveries_against_the_booking_rate(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bookbench", "run", "--scenarios", "burst", "--index-set", "recommended",
         "--appointments", "100000", "--skip-checks", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=1200)
    run_dir = Path(done.stdout.strip().splitlines()[-1])
    sc = json.loads((run_dir / "summary.json").read_text())["scenarios"]["burst"]
    nt = sc["notifications"]
    facts = json.loads((run_dir / "notifications" / "burst.json").read_text())
    window = facts["load_end"] - facts["load_start"]
    booked = nt["acknowledged_bookings"] / window
    queued = nt["queued"] / window
    during = [b for t, b in facts["backlog"] if t <= facts["load_end"]]
    growth = (during[-1] - during[0]) / window if len(during) > 1 else 0.0
    print(f"\nburst, recommended, 100k appointments, {nt['dispatchers']} dispatcher(s), {window:.0f} s of load:"
          f"\n  bookings acknowledged {booked:.0f}/s, notifications queued {queued:.0f}/s (with cancellations)"
          f"\n  delivered {nt['delivered_per_s'] or 0:.0f}/s over the run; backlog grew {growth:.0f}/s during the load"
          f" (deliveries / queued = {(queued - growth) / queued:.2f}), peak {nt['backlog']['peak']:,}, "
          f"drained {nt['drain_s']} s after the load"
          f"\n  SMS delay P50 {nt['sms']['delay_s']['p50']:.1f} s, P95 {nt['sms']['delay_s']['p95']:.1f} s; lost "
          f"{nt['lost']}; booking P95 {sc['latency_ms']['p95']:.0f} ms")
    assert done.returncode in (0, 1), done.stdout + done.stderr
