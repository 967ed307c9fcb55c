"""A deadline for reading a request's head, which uvicorn does not have.

uvicorn's httptools protocol arms its keep-alive timer only after a response, and every byte received disarms it:
a connection that sends nothing, or one byte of header a second, is held open forever (300 such connections were
never closed). Here each connection must deliver a complete request head within `header_timeout_s` of opening
or of the head's first byte; otherwise it gets a 408 (or, having sent nothing, is just closed). Body reading is
bounded by the request deadline (middleware.GuardMiddleware).

Use it with `uvicorn --http target_service.protocol:HeaderDeadlineProtocol`; `bookbench` starts the service with
`--http httptools`, so create_app also swaps it in for uvicorn's stock httptools class when uvicorn is the caller.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("target_service")

DEFAULT_HEADER_TIMEOUT_S = 10.0


def _answer_408() -> bytes:
    body = orjson.dumps({"error": "request_timeout", "detail": "the request head did not arrive in time"})
    return (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)


_408 = _answer_408()


class HeaderDeadlineProtocol(HttpToolsProtocol):
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S

    _head_timer: asyncio.TimerHandle | None = None
    _head_begun = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends a byte is covered too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        # the first byte of a head; between requests the keep-alive timer covers the idle time
        super().on_message_begin()
        self._head_begun = True
        if self._head_timer is None:
            self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        self._head_begun = False
        super().on_headers_complete()

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_begun:
            self.transport.write(_408)
        self.transport.close()


def with_header_timeout(timeout_s: float) -> type[HeaderDeadlineProtocol]:
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout_s": timeout_s})


def install(timeout_s: float) -> None:
    """When uvicorn is loading this app (the factory runs inside Config.load(), before the server binds), make its
    stock httptools protocol the one with the header deadline. Outside uvicorn (a test client, another server)
    nothing changes; with uvicorn's h11 protocol a warning says that heads are not bounded."""
    config = _loading_config()
    if config is None:
        return
    current: Any = getattr(config, "http_protocol_class", None)
    if current is HttpToolsProtocol or (isinstance(current, type) and issubclass(current, HeaderDeadlineProtocol)):
        config.http_protocol_class = with_header_timeout(timeout_s)
    else:
        log.warning("uvicorn runs the %s HTTP protocol: request heads have no read deadline (use --http "
                    "target_service.protocol:HeaderDeadlineProtocol)", getattr(current, "__name__", current))


def _loading_config() -> uvicorn.Config | None:
    frame = sys._getframe(1)
    for _ in range(8):
        frame_or_none = frame.f_back
        if frame_or_none is None:
            return None
        frame = frame_or_none
        candidate = frame.f_locals.get("self")
        if isinstance(candidate, uvicorn.Config):
            return candidate
    return None
