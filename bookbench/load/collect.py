"""The Locust side of bookbench.load.ship: a remote worker sends its sealed samples when its load stops, and the
master waits for them before it quits.

Where each side acts, and why there:
- The master's `test_stop`. A headless master whose shape ended calls `quit()`, which fires `test_stop` before it
  tells its workers anything and then gives them half a second; so its listener asks each remote worker for its
  samples (REQUEST) and waits there, yielding to gevent so its message loop keeps receiving, until every one
  answered DONE, left the run, or fell silent for the stop timeout plus IDLE_S. A master with a web UI sends
  Locust's own "stop" first: its workers have sent everything by then, and the wait ends at once.
- The worker's `test_stop` (Locust's "stop", or REQUEST, which stops the users itself: in-flight requests finish
  and are recorded first). REQUEST is handled concurrently, so the worker's message loop keeps answering the
  master's heartbeats while it sends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from bookbench.artifacts import sample_parts
from bookbench.artifacts.sample_parts import PartWriter
from bookbench.load import ship


def attach_worker(environment: Environment, runner: WorkerRunner, take_writer: Callable[[], PartWriter | None],
                  failed: Callable[[], str | None]) -> None:
    """On a remote worker: announce the samples to the master now, and send them once when the load stops.
    `take_writer()` writes the last rows and hands the writer over (nothing may write into the folder after its
    seal); `failed()` is why the recording stopped early, if it did."""
    folder: list[Path] = []  # set once the samples are sealed: a whole file may go when the master has it

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
        why = failed()
        try:
            sealed = sample_parts.seal(writer.folder, run_dir=writer.folder)
        except OSError as exc:  # its parts stay on this machine, named in the master's receipt
            sealed = []
            why = f"{why}; " if why else ""
            why += f"its samples could not be sealed on the worker ({exc.strerror or exc}); kept in {writer.folder}"
        ship.send_files(writer.folder, sealed, send, why)

    def on_request(environment: Environment, msg: Any, **_: Any) -> None:
        runner.stop()  # the users finish their request in flight (recorded), then test_stop fires: ship_now
        ship_now()

    def on_ack(environment: Environment, msg: Any, **_: Any) -> None:
        data = msg.data if isinstance(msg.data, dict) else {}
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

    def on_chunk(environment: Environment, msg: Any, **_: Any) -> None:
        ack = receiver.chunk(str(msg.node_id), msg.data if isinstance(msg.data, dict) else {})
        if ack is not None:
            runner.send_message(ship.ACK, {"file": ack[0], "ok": ack[1]}, client_id=str(msg.node_id))

    def on_done(environment: Environment, msg: Any, **_: Any) -> None:
        receiver.finished(str(msg.node_id), msg.data if isinstance(msg.data, dict) else {})

    def collect(**_: Any) -> None:
        receiver.heard_now()
        for worker in sorted(receiver.pending()):
            runner.send_message(ship.REQUEST, {}, client_id=worker)
        bound = float(environment.stop_timeout or 0) + ship.IDLE_S
        while pending := receiver.pending():
            gone = {w for w in pending if w not in runner.clients}
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
