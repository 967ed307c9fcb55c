"""Locust users that play a voice-agent call against the booking service, plus exact per-request recording.

Run by `bookbench run` (which passes a run config in BOOKBENCH_RUN_CONFIG), or by hand for exploration:
`locust -f bookbench/load/locustfile.py --host http://127.0.0.1:8000` opens Locust's web UI with the task mix and
dataset from scenarios.yaml; set BOOKBENCH_SCENARIO=burst to drive it with that scenario's stages.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.pool
from locust import FastHttpUser, LoadTestShape, between, constant, events, task
from locust.env import Environment
from locust.exception import CatchResponseError
from locust.runners import MasterRunner, WorkerRunner

from bookbench.artifacts.samples import Sample, SampleWriter
from bookbench.load.live import LiveStats
from bookbench.load.operations import VAPI_BOOKED
from bookbench.spec.dataset import DEFAULT_KEY_SECRET, DatasetParams, api_key
from bookbench.spec.scenarios import SHIPPED_SCENARIOS, Scenario, TaskMix, load_scenarios
from bookbench.spec.shape import arrival_times, users_at

SAMPLES_KEY = "bookbench_samples"  # report_to_master key; never stats / stats_total / errors
BOOKINGS_KEY = "bookbench_bookings"
DROPPED_KEY = "bookbench_dropped"
ATTEMPTS_KEY = "bookbench_attempts"


def _load_config() -> dict[str, Any]:
    path = os.environ.get("BOOKBENCH_RUN_CONFIG")
    if path:
        return dict(json.loads(Path(path).read_text()))
    # exploratory use: scenarios.yaml's task mix and dataset
    spec = load_scenarios(SHIPPED_SCENARIOS)
    name = os.environ.get("BOOKBENCH_SCENARIO")
    return {"task_mix": spec.task_mix.model_dump(), "dataset": spec.dataset.model_dump(),
            "scenario": spec.scenarios[name].model_dump() if name else None}


def exception_text(exc: BaseException) -> str:
    """`Class: message` on one line, or the class alone: many client-side errors have no message
    (str(RemoteDisconnected()) == "")."""
    message = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def error_text(exception: BaseException | None) -> str:
    """The samples' `error` column: empty for a success, never empty for a failure."""
    if exception is None:
        return ""
    if isinstance(exception, CatchResponseError):  # a failure() of ours: its message is the text
        return " ".join(str(exception).split())[:300] or type(exception).__name__
    return exception_text(exception)[:300]


def failure_text(resp: Any) -> str:
    """Why an answer was not accepted: its HTTP status and the start of its body; or, when no HTTP answer came
    (status 0: refused, reset, timed out), the client-side error that stopped the request."""
    if not resp.status_code:
        error = getattr(resp, "error", None)
        return exception_text(error) if error is not None else "no HTTP response"
    return f"HTTP {resp.status_code}: {(resp.text or '')[:120]}"


CONFIG = _load_config()
MIX = TaskMix.model_validate(CONFIG["task_mix"])
SCENARIO = Scenario.model_validate(CONFIG["scenario"]) if CONFIG.get("scenario") else None
OPEN_MODEL = SCENARIO is not None and SCENARIO.open_model
# Locust processes that generate load (1, or the workers): each takes its share of an open model's rate
PROCESSES = max(1, int(CONFIG.get("processes", 1)))
LAYOUT = DatasetParams(**{k: v for k, v in CONFIG["dataset"].items()
                          if k in ("orgs", "providers_per_org", "contacts", "appointments", "seed")})
SECRET = os.environ.get("BOOKBENCH_KEY_SECRET", DEFAULT_KEY_SECRET)
KEYS = {org: f"Bearer {api_key(org, SECRET)}" for org in range(1, LAYOUT.orgs + 1)}


class Recorder:
    """Collects every request unrounded; flushes to the samples file (local/master) or ships it to the master."""

    def __init__(self) -> None:
        self.writer: SampleWriter | None = None
        self.bookings_path: Path | None = None
        self.pending: list[Sample] = []
        self.booked: list[tuple[int, float]] = []  # (appointment id, when its acknowledgement arrived)
        self.dropped: list[float] = []  # open model: intended times of arrivals that found no free capacity
        self.dropped_path: Path | None = None
        # every booking sent, as (contact, provider, start): what lets the reconciliation attribute a new row to
        # this run (a row nobody here asked for is another writer's, never a phantom of ours)
        self.attempts: list[tuple[int, int, str]] = []
        self.attempts_path: Path | None = None
        self.in_flight = 0  # open model: requests under way (the `users` column then holds this)
        self.worker = "local"
        self.env: Environment | None = None
        self.requests = 0
        self.failures = 0
        self.live: LiveStats | None = None  # set where the samples file is written (local runner or master)

    def on_request(self, request_type: str, name: str, response_time: float, response_length: int,
                   response: Any = None, exception: Any = None, start_time: float | None = None,
                   context: dict[str, Any] | None = None, **_: Any) -> None:
        status = int(getattr(response, "status_code", 0) or 0)
        if OPEN_MODEL:
            users = self.in_flight
        else:
            users = self.env.runner.user_count if self.env is not None and self.env.runner is not None else 0
        error = error_text(exception)
        self.requests += 1
        self.failures += exception is not None
        intended = (context or {}).get("intended")
        self.pending.append((start_time or time.time() - response_time / 1000, float(response_time), name,
                             request_type, status, int(exception is None), error, int(response_length or 0),
                             users, self.worker, intended))

    def take(self) -> tuple[list[Sample], list[tuple[int, float]], list[float], list[tuple[int, int, str]]]:
        rows, self.pending = self.pending, []
        booked, self.booked = self.booked, []
        dropped, self.dropped = self.dropped, []
        attempts, self.attempts = self.attempts, []
        return rows, booked, dropped, attempts

    def flush_local(self) -> None:
        self.store(*self.take())

    def store(self, rows: list[Sample], booked: list[tuple[int, float]], dropped: list[float],
              attempts: list[tuple[int, int, str]]) -> None:
        if self.attempts_path is not None and attempts:
            with self.attempts_path.open("a") as fh:
                fh.write("".join(f"{c} {p} {start}\n" for c, p, start in attempts))
        if self.dropped_path is not None and dropped:
            with self.dropped_path.open("a") as fh:
                fh.write("".join(f"{t:.6f}\n" for t in dropped))
        if self.live is not None:
            for row in rows:
                self.live.add(row[0], row[1], bool(row[5]))
        if self.writer is not None and rows:
            self.writer.extend(rows)
            self.writer.flush()
        if self.bookings_path is not None and booked:
            with self.bookings_path.open("a") as fh:
                fh.write("".join(f"{i} {t:.6f}\n" for i, t in booked))


RECORDER = Recorder()


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    RECORDER.env = environment
    runner = environment.runner
    # BOOKBENCH_RECORD=0: plain Locust with the same users, the baseline of the recording-overhead benchmark
    if os.environ.get("BOOKBENCH_RECORD", "1") == "0":
        return
    environment.events.request.add_listener(RECORDER.on_request)
    if isinstance(runner, WorkerRunner):
        RECORDER.worker = runner.client_id

        def ship(client_id: str, data: dict[str, Any]) -> None:
            data[SAMPLES_KEY], data[BOOKINGS_KEY], data[DROPPED_KEY], data[ATTEMPTS_KEY] = RECORDER.take()

        environment.events.report_to_master.add_listener(ship)
        return
    samples = CONFIG.get("samples_path")
    if samples:
        RECORDER.writer = SampleWriter(Path(samples))
    # a master hears from its workers every few seconds (Locust's stats report interval), so its window lags
    RECORDER.live = LiveStats(lag_s=4.0 if isinstance(runner, MasterRunner) else 0.0)
    if CONFIG.get("bookings_path"):
        RECORDER.bookings_path = Path(CONFIG["bookings_path"])
    if CONFIG.get("dropped_path"):
        RECORDER.dropped_path = Path(CONFIG["dropped_path"])
    if CONFIG.get("attempts_path"):
        RECORDER.attempts_path = Path(CONFIG["attempts_path"])
    if isinstance(runner, MasterRunner):
        def receive(client_id: str, data: dict[str, Any]) -> None:
            # msgpack turns tuples into lists on the way from a worker
            RECORDER.store([tuple(r) for r in data.get(SAMPLES_KEY, [])],
                           [(int(b[0]), float(b[1])) for b in data.get(BOOKINGS_KEY, [])],
                           [float(t) for t in data.get(DROPPED_KEY, [])],
                           [(int(a[0]), int(a[1]), str(a[2])) for a in data.get(ATTEMPTS_KEY, [])])

        environment.events.worker_report.add_listener(receive)
    gevent.spawn(_background, environment)


def _background(environment: Environment) -> None:
    """Once a second: write what was recorded and an exact progress snapshot for the orchestrator's display."""
    progress = CONFIG.get("progress_path")
    while True:
        gevent.sleep(1.0)
        RECORDER.flush_local()
        runner = environment.runner
        if progress and runner is not None and RECORDER.live is not None:
            shape = environment.shape_class
            # the shape's clock starts with the load, not with the process: the display counts load seconds
            elapsed = shape.get_run_time() if shape is not None and runner.state != "ready" else None
            RECORDER.live.snapshot(time.time(), runner.user_count, elapsed).write(Path(progress))


@events.quitting.add_listener
def _on_quit(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, WorkerRunner):
        RECORDER.flush_local()


def _weight(task_name: str) -> int:
    return MIX.weights.get(task_name, 0)  # type: ignore[call-overload, no-any-return]


def _booked_id(answer: str) -> int | None:
    """The new appointment's id from a booking answer, None for a taken slot or a failed call."""
    if MIX.protocol == "vapi":
        found = VAPI_BOOKED.match(answer)
        return int(found.group(1)) if found else None
    try:
        return int(json.loads(answer)["appointment_id"])
    except (ValueError, KeyError, TypeError):
        return None  # a 409 (slot taken) carries an error body, not an appointment


class VoiceAgentCaller(FastHttpUser):
    """One caller of one clinic: checks availability, looks up their appointment, books, sometimes cancels."""

    wait_time = (between(MIX.think_time_s.min, MIX.think_time_s.max) if MIX.think_time_s.max > 0
                 else constant(0))
    # the closed model's users; an open-model scenario drives callers from ArrivalScheduler instead
    abstract = OPEN_MODEL
    intended: float | None = None  # open model: the send time this request was scheduled for
    # a 3xx is the target's answer, recorded as a failure with its status; following it could take the load to a
    # host the loopback rule refuses (geventhttpclient follows up to 30 by default)
    max_redirects = 0

    def context(self) -> dict[str, Any]:
        return {"intended": self.intended} if self.intended is not None else {}

    def on_start(self) -> None:
        self.org = random.randint(1, LAYOUT.orgs)
        self.auth = {"Authorization": KEYS[self.org]}
        self.my_bookings: list[int] = []

    def _contact(self) -> int:
        return random.choice(LAYOUT.contacts_of(self.org))

    def _provider(self) -> int:
        return random.choice(LAYOUT.providers_of(self.org))

    def _call(self, tool: str, rest_method: str, rest_path: str, args: dict[str, Any],
              accept: tuple[int, ...] = (200,)) -> str:
        """One operation over REST or Vapi; a taken slot or an unknown id is an answer, not a failure."""
        if MIX.protocol == "vapi":
            call = {"id": f"c{random.getrandbits(32)}", "type": "function",
                    "function": {"name": tool, "arguments": args}}
            envelope = {"message": {"type": "tool-calls", "toolCallList": [call]}}
            with self.client.post(f"/api/vapi/tools/{tool}", json=envelope, headers=self.auth, name=tool,
                                  catch_response=True) as resp:
                if resp.status_code != 200:
                    resp.failure(failure_text(resp))
                    return ""
                result = resp.json()["results"][0]
                if result.get("error"):
                    resp.failure(f"tool error: {result['error']}")
                    return ""
                return str(result.get("result", ""))
        body = args if rest_method == "POST" and args else None
        with self.client.request(rest_method, rest_path, json=body, headers=self.auth, name=tool,
                                 catch_response=True) as resp:
            if resp.status_code not in accept:
                resp.failure(failure_text(resp))
                return ""
            resp.success()
            return resp.text or ""

    @task(_weight("checkAvailability"))
    def check_availability(self) -> None:
        provider = self._provider()
        day = (dt.date.today() + dt.timedelta(days=random.randint(1, 120))).isoformat()
        self._call("checkAvailability", "GET", f"/api/v1/providers/{provider}/availability?date={day}",
                   {"providerId": provider, "date": day})

    @task(_weight("lookupUpcomingAppointment"))
    def lookup_upcoming(self) -> None:
        contact = self._contact()
        self._call("lookupUpcomingAppointment", "GET", f"/api/v1/contacts/{contact}/appointments/upcoming",
                   {"contactId": contact})

    @task(_weight("bookClinicAppointment"))
    def book(self) -> None:
        day = dt.datetime.now(dt.UTC).replace(hour=9, minute=0, second=0, microsecond=0)
        start = day + dt.timedelta(days=random.randint(1, 120), minutes=30 * random.randint(0, 15))
        contact, provider = self._contact(), self._provider()
        args = {"contactId": contact, "providerId": provider, "start": start.isoformat(), "durationMinutes": 30}
        RECORDER.attempts.append((contact, provider, start.isoformat()))
        text = self._call("bookClinicAppointment", "POST", "/api/v1/appointments", args, accept=(201, 409))
        appt = _booked_id(text)
        if appt is not None:
            self.my_bookings.append(appt)
            RECORDER.booked.append((appt, time.time()))

    @task(_weight("cancelAppointment"))
    def cancel(self) -> None:
        if not self.my_bookings:
            return  # a caller only cancels what they booked; nothing yet, nothing to do
        appt = self.my_bookings.pop(random.randrange(len(self.my_bookings)))
        self._call("cancelAppointment", "POST", f"/api/v1/appointments/{appt}/cancel",
                   {"appointmentId": appt}, accept=(200,))


class ArrivalScheduler(FastHttpUser):
    """Open model: one per Locust process. Sends each arrival at its intended time (Poisson or uniform, this
    process's share of the rate) through a pool of `max_in_flight` callers; an arrival that finds every caller busy
    is dropped and counted, never silently skipped or sent late."""

    abstract = not OPEN_MODEL
    wait_time = constant(0)
    max_redirects = 0  # as VoiceAgentCaller: a redirect is an answer, never followed
    done = False

    def _one(self, caller: VoiceAgentCaller, intended: float, free: list[VoiceAgentCaller]) -> None:
        RECORDER.in_flight += 1
        caller.intended = intended
        try:
            tasks = [t for t in OPEN_TASKS if t.__name__ != "cancel" or caller.my_bookings]
            choice = random.choices(tasks, weights=[OPEN_WEIGHTS[t.__name__] for t in tasks])[0]
            choice(caller)
        finally:
            caller.intended = None
            RECORDER.in_flight -= 1
            free.append(caller)

    @task
    def schedule(self) -> None:
        if self.done:  # the whole schedule ran once; idle until the shape ends the test
            gevent.sleep(0.5)
            return
        assert SCENARIO is not None
        self.done = True
        # Locust gives the host only to the user classes it spawns; the callers are made here
        VoiceAgentCaller.host = self.host
        callers = [VoiceAgentCaller(self.environment) for _ in range(-(-SCENARIO.max_in_flight // PROCESSES))]
        for caller in callers:
            caller.on_start()
        free = list(callers)
        group = gevent.pool.Group()
        t0 = time.time()
        for offset in arrival_times(SCENARIO.stages, SCENARIO.arrivals, random.Random(), 1.0 / PROCESSES):
            intended = t0 + offset
            delay = intended - time.time()
            if delay > 0:
                gevent.sleep(delay)
            if not free:
                RECORDER.dropped.append(intended)
                continue
            group.spawn(self._one, free.pop(), intended, free)
        group.join(timeout=30)


# an arrival is one request of the mix (cancel only for a caller with a booking of its own)
OPEN_TASKS = [VoiceAgentCaller.check_availability, VoiceAgentCaller.lookup_upcoming, VoiceAgentCaller.book,
              VoiceAgentCaller.cancel]
OPEN_WEIGHTS = {"check_availability": _weight("checkAvailability"),
                "lookup_upcoming": _weight("lookupUpcomingAppointment"),
                "book": _weight("bookClinicAppointment"), "cancel": _weight("cancelAppointment")}


if SCENARIO is not None:
    _STAGES = SCENARIO.stages

    class ScenarioShape(LoadTestShape):
        """The scenario's stages; tick() is users_at() of the elapsed time (unit-tested without Locust)."""

        def tick(self) -> tuple[int, float] | None:
            return users_at(_STAGES, self.get_run_time(), PROCESSES)
