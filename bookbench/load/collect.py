"""The Locust side of bookbench.load.ship: a remote worker sends its samples files when its load stops, and the
master waits for them before it quits.

Where each side acts, and why there:
- The master's `test_stop`. A headless master whose shape ended calls `quit()`, which fires `test_stop` before it
  tells its workers anything and then gives them half a second; so its listener first tells every local worker
  Locust's own "quit" (they would otherwise keep loading the target through the whole transfer), asks each remote
  worker for its samples (REQUEST) and waits there, yielding to gevent so its message loop keeps receiving and
  acknowledging chunks, until every one answered DONE, left the run, or fell silent for the stop timeout plus
  IDLE_S. A master with a web UI sends Locust's own "stop" to every worker first; the wait is the same.
- The worker's `test_stop` (Locust's "stop", or REQUEST, which stops the users itself: in-flight requests finish
  and are recorded first). It sends its segments and parts as they are, merging nothing more (the compaction merge
  under way, if any, ends first: it removes the parts it holds): the master's acknowledgements pace it, and they are
  read by the worker's message loop, so the transfer never runs on that loop (REQUEST is handled in a greenlet of
  its own; a "stop" that fired test_stop on the loop starts the transfer beside it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from bookbench.artifacts.sample_parts import PartWriter
from bookbench.load import ship

# a worker absent from the master's list this much longer than the stop timeout left the run: one that had Locust's
# own "stop" is out of the list for the stop timeout (it sleeps that long in its message loop), and comes back
GONE_S = 5.0


def attach_worker(environment: Environment, runner: WorkerRunner, take_writer: Callable[[], PartWriter | None],
                  failed: Callable[[], str | None]) -> None:
    """On a remote worker: announce the samples to the master now, and send them once when the load stops.
    `take_writer()` writes the last rows and hands the writer over (nothing may write into the folder after it);
    `failed()` is why the recording stopped early, if it did."""
    folder: list[Path] = []  # set once the transfer starts: a whole file may go when the master has it
    loop: list[Any] = []  # the greenlet of the worker's message loop, seen when the master's first ACK arrives
    window = ship.Window(stall_s=ship.IDLE_S, sleep=gevent.sleep)

    def send(kind: str, data: dict[str, Any]) -> None:
        runner.send_message(kind, data)
        gevent.sleep(0)  # let the heartbeat and the message loop run between two chunks

    def ship_now(**_: Any) -> None:
        if folder:
            return  # once: Locust's "stop" and the master's REQUEST may both come
        writer = take_writer()
        if writer is None:
            return
        folder.append(writer.folder)
        # after Locust's "stop" the message loop sleeps the stop timeout and reads no ACK meanwhile
        window.stall_s = float(environment.stop_timeout or 0) + ship.IDLE_S

        def transfer(writer: PartWriter) -> None:
            writer.compaction.finish(gevent.sleep)  # a merge still running removes the parts it holds: it ends first
            ship.send_files(writer.folder, send, failed(), window)

        if loop and gevent.getcurrent() is loop[0]:
            # Locust's "stop" fired test_stop on the message loop: the acks the transfer waits for need that loop
            gevent.spawn(transfer, writer)
        else:
            transfer(writer)

    def on_request(environment: Environment, msg: Any, **_: Any) -> None:
        runner.stop()  # the users finish their request in flight (recorded), then test_stop fires: ship_now
        ship_now()

    def on_ack(environment: Environment, msg: Any, **_: Any) -> None:
        if not loop:
            loop.append(gevent.getcurrent())  # a handler registered without concurrent=True runs on the loop
        data = msg.data if isinstance(msg.data, dict) else {}
        window.acknowledged(int(data.get("chunks", 0)))
        name = str(data.get("file", ""))
        if folder and data.get("ok") and ship.is_file_name(name):
            # the master keeps it whole: this copy may go. Without the ack the worker keeps its copy, and
            # `bookbench worker` says where
            (folder[0] / name).unlink(missing_ok=True)

    runner.register_message(ship.REQUEST, on_request, concurrent=True)
    runner.register_message(ship.ACK, on_ack)
    environment.events.test_stop.add_listener(ship_now)  # type: ignore[no-untyped-call]  # Locust: untyped
    runner.send_message(ship.HELLO, {})


def attach_master(environment: Environment, runner: MasterRunner, folder: Path) -> ship.Receiver:
    """On the master: receive the remote workers' files into `folder`, and wait for them at test_stop."""
    receiver = ship.Receiver(folder)

    def on_hello(environment: Environment, msg: Any, **_: Any) -> None:
        receiver.hello(str(msg.node_id))
        # acknowledges nothing yet: it shows the worker which greenlet reads the master's messages (ship_now)
        runner.send_message(ship.ACK, {"chunks": 0}, client_id=str(msg.node_id))

    def on_chunk(environment: Environment, msg: Any, **_: Any) -> None:
        ack = receiver.chunk(str(msg.node_id), msg.data if isinstance(msg.data, dict) else {})
        runner.send_message(ship.ACK, ack, client_id=str(msg.node_id))

    def on_done(environment: Environment, msg: Any, **_: Any) -> None:
        receiver.finished(str(msg.node_id), msg.data if isinstance(msg.data, dict) else {})

    def collect(**_: Any) -> None:
        receiver.heard_now()
        if receiver.pending():
            _quit_local_workers(runner, receiver.expected)
        for worker in sorted(receiver.pending()):
            runner.send_message(ship.REQUEST, {}, client_id=worker)
        bound = float(environment.stop_timeout or 0) + ship.IDLE_S
        gone_after = float(environment.stop_timeout or 0) + GONE_S
        absent: dict[str, float] = {}  # worker -> since when it is not in the master's list
        while pending := receiver.pending():
            now = time.monotonic()
            for worker in pending:
                if worker in runner.clients:
                    absent.pop(worker, None)
                else:
                    absent.setdefault(worker, now)
            gone = {w for w in pending if now - absent.get(w, now) > gone_after}
            if gone:
                receiver.give_up(gone, "left the run before sending its samples")
            elif receiver.idle_s() > bound:
                receiver.give_up(pending, f"sent nothing for {bound:g} s")
            else:
                gevent.sleep(0.2)
        if not receiver.expected:
            return
        for problem in receiver.problems:
            logging.error("bookbench: remote samples: %s", problem)
        try:
            receiver.write_receipt(ship.receipt_path(folder))
        except OSError as exc:
            logging.error("bookbench: the receipt of the remote workers' samples could not be written: %s", exc)

    runner.register_message(ship.HELLO, on_hello)
    runner.register_message(ship.CHUNK, on_chunk)
    runner.register_message(ship.DONE, on_done)
    environment.events.test_stop.add_listener(collect)  # type: ignore[no-untyped-call]  # Locust: untyped
    return receiver


def _quit_local_workers(runner: MasterRunner, remote: set[str]) -> None:
    """Locust's own "quit" to every worker that is not a remote one awaited: a headless master's quit() has told
    them nothing yet, and they would keep loading the target through the transfer. Each finishes its requests in
    flight, sends its last report and writes its last rows, as it would at the master's quit a moment later. Not
    "stop": a stopped worker leaves the master's list and sleeps the stop timeout in its message loop, so it would
    not hear the quit that follows and would outlive its master."""
    for client in list(runner.clients.all):
        if client.id not in remote:
            runner.send_message("quit", None, client_id=client.id)
