"""Time budgets for tests that wait on real processes, scaled by a calibration of this machine taken when asked.

A test that bounds how long something may take (a hang named within N s, a subprocess given N s) states N as
measured on an idle 2-core machine; `budget(N)` stretches it by how much slower the machine is right now, so a
shared CI runner or a laptop with a build beside it never fails a test only for being slow. The calibration is a
fixed amount of work (hashing a buffer): its CPU time says how fast this machine's cores are, and its wall time over
its CPU time says how much of a core this process gets at the moment.
"""

from __future__ import annotations

import hashlib
import os
import time

# CPU seconds the calibration's work took on the reference machine (2 cores, Python 3.11, measured 2026-11-27:
# 0.031-0.033 s over 20 repeats, the same under load: CPU time does not count waiting); a slower core takes longer
REFERENCE_CPU_S = 0.031
_BUFFER = bytes(range(256)) * 4096  # 1 MiB
_ROUNDS = 48
# never stretch beyond this: a machine 8x slower than the reference is not one a test suite can be judged on, and an
# unbounded budget would turn a real hang into a suite that never ends
MAX_FACTOR = 8.0


def _work() -> tuple[float, float]:
    """Wall and CPU seconds of one fixed piece of work."""
    wall, cpu = time.perf_counter(), time.process_time()
    digest = b""
    for _ in range(_ROUNDS):
        digest = hashlib.sha256(_BUFFER + digest).digest()
    return time.perf_counter() - wall, time.process_time() - cpu


def slowness() -> float:
    """How many times slower than the idle reference this machine is now (>= 1; best of three short samples, so one
    unlucky preemption does not count as a slow machine)."""
    samples = [_work() for _ in range(3)]
    wall, cpu = min(samples)
    contention = wall / cpu if cpu > 0 else 1.0  # < 1 core for this process: others hold the CPU
    speed = max(cpu / REFERENCE_CPU_S, 1.0)  # a slower core than the reference's
    # load average per core beyond 1 is contention the short sample may have dodged between time slices
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    return min(max(contention * speed, load, 1.0), MAX_FACTOR)


def budget(idle_s: float) -> float:
    """`idle_s` (what the wait takes on an idle reference machine, with its margin) stretched to this machine now."""
    return idle_s * slowness()
