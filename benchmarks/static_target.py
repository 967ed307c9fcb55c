"""A trivial target: every request gets one fixed `200` JSON answer, so a benchmark measures the load generator.

One asyncio process on raw sockets (asyncio.Protocol, no HTTP framework): HTTP/1.1 keep-alive, pipelined requests
answered in order, bodies with Content-Length skipped. `GET /stats` answers `{"handled": N}`, the number of other
requests answered so far, which is what bookbench reads from its own service (pipeline/integrity.py), so a run
against this target checks its three counts (samples, Locust, target) as it does against the reference service.

    python -m benchmarks.static_target --host 127.0.0.1 --port 0 --ready-file /tmp/port

prints (and writes to --ready-file) the port it listens on, and serves until SIGTERM or SIGINT; then prints, as
its last line, `{"handled": N, "peers": {"<client address>": n, ...}}`.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path


def _json(status: int, body: bytes) -> bytes:
    reason = b"OK" if status == 200 else b"Not Found"
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
            % (status, reason, len(body)) + body)


_ANSWER = _json(200, b'{"ok":true,"slots":[],"appointment":null}')  # built once: the hot path only copies it
_HEAD_END = b"\r\n\r\n"
_LONGEST_HEAD = 64 * 1024  # a head without an end this long is not HTTP: the connection is dropped


class Counter:
    """Requests answered (bookbench's own /stats questions aside), in all and per client address."""

    def __init__(self) -> None:
        self.handled = 0
        self.peers: collections.Counter[str] = collections.Counter()


class _Http(asyncio.Protocol):
    """One connection: split the byte stream into requests, answer each with the fixed body."""

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.buf = b""
        self.skip = 0  # body bytes of the current request still to come
        self.transport: asyncio.Transport | None = None
        self.peer = "?"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else "?"

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        buf = self.buf + data
        out: list[bytes] = []
        while True:
            if self.skip:
                taken = min(self.skip, len(buf))
                buf, self.skip = buf[taken:], self.skip - taken
                if self.skip:
                    break
            end = buf.find(_HEAD_END)
            if end < 0:
                break
            head, buf = buf[:end], buf[end + 4:]
            self.skip = _content_length(head)
            out.append(self._answer(head))
        if len(buf) > _LONGEST_HEAD:
            self.transport.close()
            return
        self.buf = buf
        if out:
            # one write per read: pipelined requests leave in one segment
            self.transport.write(b"".join(out))

    def _answer(self, head: bytes) -> bytes:
        if head.startswith(b"GET /stats"):
            # bookbench's own questions (the count, /stats/timing) are not load: never counted, and only the count
            # is answered, so the run says "service timing not measured" rather than reading a fixed body as one
            if head.startswith(b"GET /stats "):
                return _json(200, b'{"handled":%d}' % self.counter.handled)
            return _json(404, b'{"detail":"not here"}')
        self.counter.handled += 1
        self.counter.peers[self.peer] += 1  # who sent the load: a test across namespaces checks every host did
        return _ANSWER


def _content_length(head: bytes) -> int:
    """The body length a request announces (0 without one); chunked bodies are not expected from Locust's GETs."""
    at = head.lower().find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    line_end = head.find(b"\r\n", at + 2)
    value = head[at + 17:line_end if line_end >= 0 else len(head)]
    return int(value.strip() or 0)


async def serve(host: str, port: int, ready_file: Path | None) -> None:
    loop = asyncio.get_running_loop()
    counter = Counter()
    server = await loop.create_server(lambda: _Http(counter), host, port, reuse_address=True, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    if ready_file is not None:
        tmp = ready_file.with_suffix(".tmp")
        tmp.write_text(str(bound))
        tmp.replace(ready_file)  # whole or absent: the caller polls for it
    print(f"static target on {host}:{bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    # the last line of its output: a caller reads the count per client address from it
    print(json.dumps({"handled": counter.handled, "peers": dict(counter.peers)}), flush=True)


class Process:
    """This target as a child process, optionally under a command prefix (`ip netns exec NS`): started, its port
    read from the ready file, stopped with SIGTERM (it prints its count on the way out)."""

    def __init__(self, workdir: Path, host: str = "127.0.0.1", prefix: tuple[str, ...] = ()) -> None:
        self.ready = workdir / "static_target.port"
        self.ready.unlink(missing_ok=True)
        self.log = workdir / "static_target.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen([*prefix, sys.executable, "-m", "benchmarks.static_target", "--host", host,
                                          "--ready-file", str(self.ready)], stdout=log, stderr=subprocess.STDOUT,
                                         cwd=Path(__file__).resolve().parents[1])
        self.host = host
        self.port = self._wait_port(deadline=time.monotonic() + 30)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _wait_port(self, deadline: float) -> int:
        while not self.ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the static target did not start: {self.log.read_text()[-2000:]}")
            time.sleep(0.05)
        return int(self.ready.read_text())

    def final_counts(self) -> dict[str, int]:
        """After stop(): requests answered per client address (the last line the target printed)."""
        last = self.log.read_text().strip().splitlines()[-1]
        return {str(k): int(v) for k, v in json.loads(last)["peers"].items()}

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--ready-file", type=Path, default=None)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.ready_file))


if __name__ == "__main__":
    main()
