"""The HTTP-level probes of `check hostile`: the reference service answers each as documented (a stalled body is a
408 and a closed connection within the request timeout plus a margin; a duplicated JSON key is a 400; two
Authorization headers are a 400/401), and each probe tells a right answer from a wrong one (a stub server that
answers correctly passes them all; one that answers like the service once did fails them all)."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from bookbench.checks.base import CheckResult
from bookbench.checks.hostile_http import DOCUMENTED_TIMEOUT_S, STALL_MARGIN_S, run
from bookbench.checks.hostile_ids import Absent
from bookbench.checks.hostile_inputs import Layout
from bookbench.pipeline.stack import ServiceProcess
from tests.conftest import SMALL

pytestmark = pytest.mark.integration

# ids a read would prove absent (multiples of 2^32, as hostile_deployment draws them)
LAYOUT = Layout(SMALL, real_ids=False, absent=Absent((5 * 2**32, 7 * 2**32), (11 * 2**32,)))


@pytest.fixture(scope="module")
def results(api: ServiceProcess) -> dict[str, CheckResult]:
    return {r.name: r for r in run(api.base_url, LAYOUT)}


def _one(results: dict[str, CheckResult], words: str) -> CheckResult:
    [found] = [r for name, r in results.items() if words in name]
    return found


@pytest.mark.parametrize("with_key", ["with a key", "without a key"])
def test_a_stalled_body_is_a_408_and_a_closed_connection(results: dict[str, CheckResult], with_key: str) -> None:
    result = _one(results, f"stalled body (Content-Length 500, 15 bytes sent, {with_key})")
    assert result.passed, result.detail
    assert result.seconds <= DOCUMENTED_TIMEOUT_S + STALL_MARGIN_S


@pytest.mark.parametrize("values", ["different values", "same values"])
def test_a_duplicated_json_key_is_a_400(results: dict[str, CheckResult], values: str) -> None:
    result = _one(results, f"duplicated JSON key in a booking ({values})")
    assert result.passed, result.detail


@pytest.mark.parametrize("second", ["another tenant's key", "an invalid key"])
def test_two_authorization_headers_are_refused(results: dict[str, CheckResult], second: str) -> None:
    result = _one(results, f"two Authorization headers (a valid key, then {second})")
    assert result.passed, result.detail


# --- the probes judge, whatever the service does today ---------------------------------------------------------------

class _Stub(BaseHTTPRequestHandler):
    """Answers each probe by a rule: `lax` like the service before issue 21 (504 after the deadline, last key
    wins, first header wins), otherwise as documented."""

    lax = False
    timeout = 1.0  # the stub's own (short) request-read deadline; a lax stub answers 504 after it instead

    def log_message(self, *_: object) -> None:
        pass

    def _answer(self, status: int, body: bytes, close: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        try:
            body = self.rfile.read(int(self.headers["Content-Length"]))
        except TimeoutError:
            if self.lax:
                self._answer(504, b'{"error":"deadline_exceeded","detail":"x"}', close=False)
                return
            self._answer(408, b'{"error":"request_timeout","detail":"x"}', close=True)
            return
        if body.count(b'"contactId"') > 1 and not self.lax:
            self._answer(400, b'{"error":"invalid_json","detail":"duplicated key"}', close=False)
        else:
            self._answer(404, b'{"error":"contact_not_found","detail":"x"}', close=False)

    def do_GET(self) -> None:
        if len(self.headers.get_all("Authorization") or []) > 1 and not self.lax:
            self._answer(400, b'{"error":"invalid_request","detail":"two Authorization headers"}', close=False)
        else:
            self._answer(200, b'{"provider_id":1,"free_slots":[]}', close=False)


@pytest.fixture(params=[False, True], ids=["as-documented", "lax"])
def stub(request: pytest.FixtureRequest) -> Iterator[tuple[str, bool]]:
    handler = type("Handler", (_Stub,), {"lax": request.param})
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", request.param
    finally:
        server.shutdown()
        server.server_close()


def test_each_probe_passes_a_right_answer_and_fails_a_wrong_one(stub: tuple[str, bool]) -> None:
    url, lax = stub
    results = run(url, LAYOUT)
    assert len(results) == 6
    verdicts = {r.name: r.passed for r in results}
    assert verdicts == {name: not lax for name in verdicts}, [(r.name, r.detail) for r in results]
