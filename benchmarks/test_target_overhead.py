"""What the target layer costs per request (issue 22 item 6): the profile's templating and answer reading for a
booking (Target.values + request + read), through reference-rest and postgrest, against the load generator's own
per-request time measured in the same run (Locust's FastHttpSession, as the callers use it, against a trivial
loopback server in another process, so that the generator sets the pace). Printed as a ratio; the goal (<= 5 %)
fails the test only under `make bench-check`. Not part of `make test`."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.goals import goal
from bookbench.config.dataset import DatasetParams
from bookbench.pipeline.locust_proc import LOCUSTFILE
from bookbench.target import pools, profile
from bookbench.target.client import Target

PARAMS = DatasetParams(orgs=10, providers_per_org=5, contacts=10_000, appointments=100_000, seed=3)
LAYER_CALLS = 50_000
GEN_SECONDS = 5
GEN_GREENLETS = 20
ROUNDS = 3
# what each profile's booking answers (the reference service's 201, the PostgREST function's one object)
ANSWERS = {"reference-rest": (201, b'{"appointment_id": 123456, "status": "booked", "scheduled_at": '
                                   b'"2030-01-02T09:30:00+00:00", "duration_minutes": 30}'),
           "postgrest": (200, b'{"booking_ref": "APT-000123456", "status": "booked", "scheduled_at": '
                              b'"2030-01-02T09:30:00+00:00"}')}

# a canned 201 on every request, keep-alive: a few microseconds of server per request, far below the client's
SERVER = textwrap.dedent("""
    import asyncio, sys
    BODY = b'{"appointment_id": 123456, "status": "booked"}'
    REPLY = (b"HTTP/1.1 201 Created\\r\\ncontent-type: application/json\\r\\ncontent-length: "
             + str(len(BODY)).encode() + b"\\r\\n\\r\\n" + BODY)
    class Canned(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport, self.buf = transport, b""
        def data_received(self, data):
            self.buf += data
            n = self.buf.count(b"\\r\\n\\r\\n")
            if n:
                self.buf = self.buf[self.buf.rfind(b"\\r\\n\\r\\n") + 4:]
                self.transport.write(REPLY * n)
    async def main():
        server = await asyncio.get_running_loop().create_server(Canned, "127.0.0.1", int(sys.argv[1]))
        print("ready", flush=True)
        await server.serve_forever()
    asyncio.run(main())
""")

# the generator as the callers drive it: FastHttpSession.request with catch_response, the request event fired,
# GREENLETS concurrent users in one process; prints requests per second
GENERATOR = textwrap.dedent("""
    import sys, time
    from gevent import monkey; monkey.patch_all()
    import gevent
    from locust.env import Environment
    from locust.contrib.fasthttp import FastHttpSession
    url, seconds, greenlets = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    env = Environment()
    body = b'{"contactId": 1234, "providerId": 12, "start": "2030-01-02T09:30:00+00:00", "durationMinutes": 30}'
    headers = {"Accept": "application/json", "Authorization": "Bearer k", "Content-Type": "application/json"}
    done = [0]
    def user():
        session = FastHttpSession(url, request_event=env.events.request, user=None)
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            with session.request("POST", "/api/v1/appointments", data=body, headers=headers,
                                 name="bookClinicAppointment", catch_response=True) as resp:
                resp.success()
            done[0] += 1
    started = time.perf_counter()
    gevent.joinall([gevent.spawn(user) for _ in range(greenlets)])
    print(done[0] / (time.perf_counter() - started))
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def canned() -> Iterator[str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(10)
    proc.stdout.close()


def _generator_us(url: str) -> float:
    """Microseconds of the load generator per request: 1 / its requests per second in one process."""
    done = subprocess.run([sys.executable, "-c", GENERATOR, url, str(GEN_SECONDS), str(GEN_GREENLETS)],
                          capture_output=True, text=True, timeout=GEN_SECONDS + 60, check=True)
    return 1e6 / float(done.stdout.strip().splitlines()[-1])


def _locust_us(url: str, tmp: Path) -> float:
    """Microseconds per request of bookbench's own Locust process (recording on, booking only, the layer
    included) against the canned server: what a run's req/s is made of."""
    tmp.mkdir(parents=True, exist_ok=True)
    mix = {"protocol": "rest", "weights": {"bookClinicAppointment": 1}, "think_time_s": {"min": 0, "max": 0}}
    config = {"format_version": 1,
              "scenario": {"stages": [{"duration_s": GEN_SECONDS, "users": GEN_GREENLETS}]}, "task_mix": mix,
              "dataset": {k: v for k, v in PARAMS.public().items() if k != "key_secret"},
              "samples_path": str(tmp / "samples.csv.gz")}
    (tmp / "config.json").write_text(json.dumps(config))
    env = {**os.environ, "BOOKBENCH_RUN_CONFIG": str(tmp / "config.json"), "BOOKBENCH_RECORD": "1"}
    subprocess.run([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", url,
                    "--only-summary", "--stop-timeout", "5", "--loglevel", "WARNING", "--json-file",
                    str(tmp / "stats")], env=env, timeout=GEN_SECONDS + 60, check=True, capture_output=True)
    total = sum(int(e["num_requests"]) for e in json.loads((tmp / "stats.json").read_text()))
    return 1e6 * GEN_SECONDS / total


def _target(name: str) -> Target:
    prof = profile.load(name)
    tenants = pools.tenants(prof.pools, PARAMS)
    target = Target(prof, tenants, pools.credentials(prof.auth.credentials, [t.id for t in tenants],
                                                     PARAMS.key_secret))
    if target.login_call is not None:  # a token held, as between two logins of a run
        for t in tenants:
            assert target.accept_login(t, 200, b'{"access_token": "eyJ.x.y", "expires_in": 3600}') is None
    return target


def _layer_us(target: Target) -> float:
    """Microseconds per booking of the layer alone: the values drawn, the request rendered, the answer read."""
    status, body = ANSWERS[target.profile.name]
    headers = {"content-type": "application/json"}
    rng = random.Random(1)
    tenant = target.tenants[0]
    op = "bookClinicAppointment"
    started = time.perf_counter()
    for _ in range(LAYER_CALLS):
        target.needs_login(tenant)
        target.request(op, tenant, target.values(tenant, rng))
        outcome = target.read(op, status, headers, body)
        target.counts_as_success(op, outcome)
    assert outcome.kind == "booked"
    return 1e6 * (time.perf_counter() - started) / LAYER_CALLS


def _direct_us() -> float:
    """Microseconds per booking of the path the layer replaced (the caller as it was written before profiles):
    the values drawn by hand, the body encoded by Locust's json=, the id read with json.loads. The layer's cost
    is what it adds on top of this."""
    contacts, providers = PARAMS.contacts_of(1), PARAMS.providers_of(1)
    headers = {"Authorization": "Bearer k"}
    answer = ANSWERS["reference-rest"][1]
    rng = random.Random(1)
    started = time.perf_counter()
    for _ in range(LAYER_CALLS):
        day = dt.datetime.now(dt.UTC).replace(hour=9, minute=0, second=0, microsecond=0)
        begin = day + dt.timedelta(days=rng.randint(1, 120), minutes=30 * rng.randint(0, 15))
        args = {"contactId": rng.choice(contacts), "providerId": rng.choice(providers), "start": begin.isoformat(),
                "durationMinutes": 30}
        json.dumps(args)
        dict(headers)
        int(json.loads(answer)["appointment_id"])
    return 1e6 * (time.perf_counter() - started) / LAYER_CALLS


@pytest.mark.bench
def test_profile_overhead_against_the_generator(canned: str, monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    monkeypatch.setenv("BOOKBENCH_POSTGREST_ANON_KEY", os.environ.get("BOOKBENCH_POSTGREST_ANON_KEY", "anon"))
    targets = {name: _target(name) for name in ("reference-rest", "postgrest")}
    generator: list[float] = []
    bookbench: list[float] = []
    layer: dict[str, list[float]] = {name: [] for name in targets}
    direct: list[float] = []
    for i in range(ROUNDS):  # interleaved, so that a drift of the machine touches both sides alike
        generator.append(_generator_us(canned))
        bookbench.append(_locust_us(canned, tmp_path / f"locust{i}"))
        direct.append(_direct_us())
        for name, target in targets.items():
            layer[name].append(_layer_us(target))
    gen, full = statistics.median(generator), statistics.median(bookbench)
    print(f"\nload generator, bare (FastHttpSession, {GEN_GREENLETS} users, one process): "
          f"{[round(g, 1) for g in generator]} us per request -> {1e6 / gen:,.0f} req/s")
    print(f"load generator, bookbench's Locust (recording, {GEN_GREENLETS} users, one process, the layer "
          f"included): {[round(g, 1) for g in bookbench]} us per request -> {1e6 / full:,.0f} req/s")
    before = statistics.median(direct)
    print(f"the hand-written booking the layer replaced: {[round(v, 2) for v in direct]} us per booking")
    for name, values in layer.items():
        us = statistics.median(values)
        print(f"{name:15s} values + request + read: {[round(v, 2) for v in values]} us per booking; "
              f"added over the hand-written path: {us - before:.1f} us; the layer in all: {100 * us / full:.1f} % "
              "of the generator's per-request time")
        goal(f"{name} layer added, share of the generator's per-request time", 100 * (us - before) / full, "<=",
             5, " %")
    assert gen > 0 and full > 0 and all(statistics.median(v) > 0 for v in layer.values())
