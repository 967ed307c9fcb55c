"""Locust users that play a voice-agent call against the booking service, plus exact per-request recording.

Run by `bookbench run` (which passes a run config in BOOKBENCH_RUN_CONFIG), or by hand for exploration:
`locust -f bookbench/load/locustfile.py --host http://127.0.0.1:8000` opens Locust's web UI with the task mix and
dataset from scenarios.yaml; set BOOKBENCH_SCENARIO=burst to drive it with that scenario's stages.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.abc
import logging
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import gevent.pool
from locust import FastHttpUser, LoadTestShape, between, constant, events, task
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from bookbench.artifacts.sample_parts import PartWriter, process_name
from bookbench.artifacts.samples import (
    WRITER_FAILED_EXIT,
    SampleWriter,
    WriteFailed,
    prepare_failure_note,
    write_failure_note,
)
from bookbench.config.dataset import DEFAULT_KEY_SECRET
from bookbench.config.shape import arrival_rate_at, arrival_times, users_at
from bookbench.load import collect, given, lifeline
from bookbench.load.live import LiveStats
from bookbench.load.recorder import Recorder, failure_text
from bookbench.target.answers import Outcome


class _WithoutPandas(importlib.abc.MetaPathFinder):
    """pyarrow imports pandas the first time it builds an array, only to ask whether its input is a pandas object.
    A load process never hands it one, and that import was ~0.3 CPU-s of every Locust process (a fifth of a short
    scenario's), spent while the generator starts. Installed in the load processes only, where nothing uses pandas:
    pyarrow takes the refusal as "pandas is not installed"."""

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name.partition(".")[0] == "pandas":
            raise ModuleNotFoundError("pandas is kept out of the load processes (bookbench/load/locustfile.py)",
                                      name=name)


if "pandas" not in sys.modules:
    sys.meta_path.insert(0, _WithoutPandas())

# report_to_master keys; never stats / stats_total / errors. A worker writes its samples itself (samples format 3):
# its master gets only the live digest (load/live.py) and the short lists below
LIVE_KEY = "bookbench_live"
IN_FLIGHT_KEY = "bookbench_in_flight"
BOOKINGS_KEY = "bookbench_bookings"
DROPPED_KEY = "bookbench_dropped"
ATTEMPTS_KEY = "bookbench_attempts"
# a request with no answer after this long is a failed sample with its timeout error (Locust's default is 60 s, longer
# than the run waits at the end: a request to a stopped service would vanish unrecorded); shorter than
# locust_proc.STOP_TIMEOUT_S, so a request in flight at the end still times out before its user is stopped
REQUEST_TIMEOUT_S = 10.0


CONFIG = given.load_config()
MIX = CONFIG.task_mix
SCENARIO = CONFIG.scenario
THINK = SCENARIO.think(MIX) if SCENARIO is not None else MIX.think_time_s
OPEN_MODEL = SCENARIO is not None and SCENARIO.open_model
# Locust processes that generate load (1, or the workers): each takes its share of an open model's rate
PROCESSES = CONFIG.processes
SECRET = os.environ.get("BOOKBENCH_KEY_SECRET", DEFAULT_KEY_SECRET)
TARGET = given.target(CONFIG, SECRET)
RNG = random.Random()


RECORDER = Recorder(OPEN_MODEL)


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    RECORDER.env = environment
    runner = environment.runner
    if SCENARIO is not None and not isinstance(runner, WorkerRunner):
        lifeline.stop_the_shape_on_sigint(lambda: RECORDER.env.runner if RECORDER.env is not None else None)
    # BOOKBENCH_RECORD=0: plain Locust with the same users, the baseline of the recording-overhead benchmark
    if os.environ.get("BOOKBENCH_RECORD", "1") == "0":
        return
    environment.events.request.add_listener(RECORDER.on_request)
    worker = isinstance(runner, WorkerRunner)
    process = "local"
    if isinstance(runner, WorkerRunner):
        RECORDER.worker, RECORDER.is_worker = runner.client_id, True
        # each process writes its own parts: a local worker's w<k> (set by bookbench), or its Locust id
        process = os.environ.get("BOOKBENCH_PROCESS") or process_name(runner.client_id)
    if CONFIG.samples_dir and not isinstance(runner, MasterRunner):  # a master records no request of its own
        RECORDER.writer = PartWriter(Path(CONFIG.samples_dir), process)
    elif CONFIG.samples_path and not worker:  # a hand-written format-2 config (the recording-cost benchmark)
        RECORDER.writer = SampleWriter(Path(CONFIG.samples_path))
    if CONFIG.failure_path:
        # a worker's note of its own: the master and its workers prepare theirs at the same time
        note = Path(CONFIG.failure_path)
        RECORDER.failure_path = note.with_name(f"{note.stem}_{process}{note.suffix}") if worker else note
        prepare_failure_note(RECORDER.failure_path)
    if worker:
        def ship(client_id: str, data: dict[str, Any]) -> None:
            data[LIVE_KEY], data[IN_FLIGHT_KEY] = RECORDER.take_digest()
            data[BOOKINGS_KEY], data[DROPPED_KEY], data[ATTEMPTS_KEY] = RECORDER.take_lists()

        environment.events.report_to_master.add_listener(ship)
        if CONFIG.remote is not None and isinstance(RECORDER.writer, PartWriter) and isinstance(runner, WorkerRunner):
            # a worker on another machine: its samples reach the run folder over Locust's channel at the end
            collect.attach_worker(environment, runner, lambda: _take_writer(environment), lambda: RECORDER.failed)
        gevent.spawn(_background, environment)
        return
    # a master hears from its workers every few seconds (Locust's stats report interval), so its window lags
    RECORDER.live = LiveStats(lag_s=4.0 if isinstance(runner, MasterRunner) else 0.0)
    if CONFIG.bookings_path:
        RECORDER.bookings_path = Path(CONFIG.bookings_path)
    if CONFIG.dropped_path:
        RECORDER.dropped_path = Path(CONFIG.dropped_path)
    if CONFIG.attempts_path:
        RECORDER.attempts_path = Path(CONFIG.attempts_path)
    if isinstance(runner, MasterRunner):
        def receive(client_id: str, data: dict[str, Any]) -> None:
            if RECORDER.live is not None:
                RECORDER.live.add_digest(data.get(LIVE_KEY) or [])
                if (in_flight := data.get(IN_FLIGHT_KEY)) is not None:
                    RECORDER.live.in_flight_at(client_id, float(in_flight[0]), int(in_flight[1]))
            # msgpack turns tuples into lists on the way from a worker
            RECORDER.store([(b[0], float(b[1])) for b in data.get(BOOKINGS_KEY, [])],
                           [float(t) for t in data.get(DROPPED_KEY, [])],
                           [(int(a[0]), int(a[1]), str(a[2])) for a in data.get(ATTEMPTS_KEY, [])])

        environment.events.worker_report.add_listener(receive)
        if CONFIG.samples_dir:  # remote workers send their samples here when the load stops
            collect.attach_master(environment, runner, Path(CONFIG.samples_dir))
    gevent.spawn(_background, environment)


lifeline.tie_worker_to_master(int(os.environ["BOOKBENCH_MASTER_PID"]) if os.environ.get("BOOKBENCH_MASTER_PID")
                              else None, remote=CONFIG.remote is not None)


def _background(environment: Environment) -> None:
    """Once a second: write what was recorded and an exact progress snapshot for the orchestrator's display."""
    progress = CONFIG.progress_path
    while True:
        gevent.sleep(1.0)
        try:
            RECORDER.flush_local()
        except WriteFailed as exc:
            _writer_failed(environment, exc)
            return
        runner = environment.runner
        if progress and runner is not None and RECORDER.live is not None:
            shape = environment.shape_class
            # the shape's clock starts with the load, not with the process: the display counts load seconds
            elapsed = shape.get_run_time() if shape is not None and runner.state != "ready" else None
            try:
                offered = (arrival_rate_at(SCENARIO.stages, elapsed)
                           if SCENARIO is not None and OPEN_MODEL and elapsed is not None else None)
                RECORDER.live.snapshot(time.time(), runner.user_count, elapsed, offered).write(Path(progress))
            except OSError:
                pass  # the display's file only (its writer leaves no temp file); a full disk is named by the next flush


def _writer_failed(environment: Environment, exc: WriteFailed, quitting: bool = False) -> None:
    """A run file could not be written (a full disk): the recording is no longer complete, so the load stops now
    rather than run on unrecorded. The reason reaches bookbench three ways: the note prepared at start (written in
    place, so it needs no new room on the disk), the log, and exit code WRITER_FAILED_EXIT."""
    samples = CONFIG.samples_dir or CONFIG.samples_path  # samples/<scenario>[.csv.gz] in the run folder
    reason = exc.describe(Path(samples).parents[1] if samples else None)
    RECORDER.failed = reason
    logging.error("bookbench: %s; recording stopped, Locust quits (exit code %d)", reason, WRITER_FAILED_EXIT)
    if RECORDER.failure_path is not None:
        with contextlib.suppress(OSError):
            write_failure_note(RECORDER.failure_path, reason)
    environment.process_exit_code = WRITER_FAILED_EXIT
    # Locust's own shutdown writes its JSON and CSV files too, and on a full disk that raises, which would end the
    # process with exit code 1: the code is kept whatever happens after this point
    atexit.register(_exit_with, WRITER_FAILED_EXIT)
    if not quitting and environment.runner is not None:
        environment.runner.quit()


def _take_writer(environment: Environment) -> PartWriter | None:
    """A remote worker's last rows written, and its writer handed over to be sealed and sent (load/collect.py):
    nothing writes into its folder after that."""
    try:
        RECORDER.flush_local(last=True)
    except WriteFailed as exc:
        _writer_failed(environment, exc, quitting=True)
    writer, RECORDER.writer = RECORDER.writer, None
    return writer if isinstance(writer, PartWriter) else None


def _exit_with(code: int) -> None:
    logging.shutdown()
    os._exit(code)


@events.quitting.add_listener
def _on_quit(environment: Environment, **_: Any) -> None:
    # every process writes its last rows itself (a worker's lists went to its master with its last report)
    if RECORDER.writer is not None or not isinstance(environment.runner, WorkerRunner):
        try:
            RECORDER.flush_local(last=True)
        except WriteFailed as exc:
            _writer_failed(environment, exc, quitting=True)


def _weight(task_name: str) -> int:
    return MIX.weights.get(task_name, 0)  # type: ignore[call-overload, no-any-return]


class VoiceAgentCaller(FastHttpUser):
    """One caller of one clinic: checks availability, looks up their appointment, books, sometimes cancels."""

    wait_time = (between(THINK.min, THINK.max) if THINK.max > 0 else constant(0))
    # the closed model's users; an open-model scenario drives callers from ArrivalScheduler instead
    abstract = OPEN_MODEL
    intended: float | None = None  # open model: the send time this request was scheduled for
    # a 3xx is the target's answer, recorded as a failure with its status; following it could take the load to a
    # host the loopback rule refuses (geventhttpclient follows up to 30 by default)
    max_redirects = 0
    network_timeout = REQUEST_TIMEOUT_S
    connection_timeout = REQUEST_TIMEOUT_S

    def context(self) -> dict[str, Any]:
        return {"intended": self.intended} if self.intended is not None else {}

    def on_start(self) -> None:
        self.tenant = random.choice(TARGET.tenants)
        self.my_bookings: list[int | str] = []

    def _login(self) -> bool:
        """The tenant's token (a profile with a login call): fetched once, again before it expires; the call is
        recorded as its own endpoint, `login`."""
        req = TARGET.login_request(self.tenant)
        with self.client.request(req.method, req.path, data=_payload(req.body), headers=req.headers, name="login",
                                 catch_response=True) as resp:
            problem = TARGET.accept_login(self.tenant, resp.status_code, resp.content or b"")
            if problem is None:
                resp.success()
                return True
            resp.failure(failure_text(resp) if not resp.status_code else problem)
            return False

    def _call(self, op: str, values: dict[str, Any]) -> Outcome | None:
        """One operation through the target profile; its answer read as an outcome. Outcomes the profile counts
        as success (by default ok, booked, slot_taken) are successful samples; the rest fail with their reading."""
        if TARGET.needs_login(self.tenant) and not self._login():
            return None
        req = TARGET.request(op, self.tenant, values)
        with self.client.request(req.method, req.path, data=_payload(req.body), headers=req.headers, name=op,
                                 catch_response=True) as resp:
            if not resp.status_code:  # no HTTP answer: the client-side error is the reason
                resp.failure(failure_text(resp))
                return None
            # the headers are copied only for a profile that reads an id from one: not per request otherwise
            outcome = TARGET.read(op, resp.status_code, _headers(resp) if TARGET.reads_headers else {},
                                  resp.content or b"")
            if TARGET.counts_as_success(op, outcome):
                resp.success()
            else:
                resp.failure(outcome.describe())
            return outcome

    @task(_weight("checkAvailability"))
    def check_availability(self) -> None:
        self._call("checkAvailability", TARGET.values(self.tenant, RNG))

    @task(_weight("lookupUpcomingAppointment"))
    def lookup_upcoming(self) -> None:
        self._call("lookupUpcomingAppointment", TARGET.values(self.tenant, RNG))

    @task(_weight("bookClinicAppointment"))
    def book(self) -> None:
        values = TARGET.values(self.tenant, RNG)
        if isinstance(values["contact"], int) and isinstance(values["provider"], int):
            RECORDER.attempts.append((values["contact"], values["provider"], values["start"].isoformat()))
        outcome = self._call("bookClinicAppointment", values)
        if outcome is not None and outcome.kind == "booked" and outcome.appointment_id is not None:
            self.my_bookings.append(outcome.appointment_id)
            RECORDER.booked.append((outcome.appointment_id, time.time()))

    @task(_weight("cancelAppointment"))
    def cancel(self) -> None:
        if not self.my_bookings:
            return  # a caller only cancels what they booked; nothing yet, nothing to do
        appt = self.my_bookings.pop(random.randrange(len(self.my_bookings)))
        self._call("cancelAppointment", TARGET.values(self.tenant, RNG, appointment=appt))


def _payload(body: bytes | None) -> Any:
    """The rendered body as Locust's fast client sends it: geventhttpclient takes bytes as they are (Locust's
    annotation says str | dict, the JSON it would encode itself)."""
    return body


def _headers(resp: Any) -> dict[str, str]:
    """Response headers with lower-case names (an id may come in Location)."""
    raw = getattr(resp, "headers", None) or {}
    return {str(k).lower(): str(v) for k, v in raw.items()}


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
            if lifeline.StopAsked.asked:
                return None
            return users_at(_STAGES, self.get_run_time(), PROCESSES)
