"""How the outbox dispatcher classifies a provider's answer (target_service.notify.providers): what is retried,
after how long, what counts toward the breaker, and what is final."""

from __future__ import annotations

import aiohttp
import pytest

from target_service.notify.providers import Answer, Outcome, classify, transport_failure


def answer(status: int, body: bytes = b"", **headers: str) -> Answer:
    return Answer(status, {k.replace("_", "-"): v for k, v in headers.items()}, body)


@pytest.mark.parametrize(("header", "wait"), [
    ("7", 7.0), ("0.5", 0.5), ("0", 0.0),
    ("-3", 0.0),  # never a negative wait
    ("Wed, 21 Oct 2030 07:28:00 GMT", None),  # an HTTP date is not read: the dispatcher's own backoff applies
    ("soon", None), ("", None),
])
def test_a_429_is_retried_after_what_it_says_and_is_not_the_providers_fault(header: str, wait: float | None) -> None:
    assert classify(answer(429, retry_after=header)) == Outcome(False, "HTTP 429", retryable=True,
                                                               retry_after_s=wait, provider_fault=False)


def test_a_429_without_retry_after_waits_for_the_backoff() -> None:
    assert classify(answer(429)).retry_after_s is None


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599, 408])
def test_server_errors_and_a_408_are_retried_and_count_toward_the_breaker(status: int) -> None:
    out = classify(answer(status, b"upstream exploded", retry_after="5"))
    assert out == Outcome(False, f"HTTP {status}", retryable=True, retry_after_s=None, provider_fault=True)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 413, 422, 302])
def test_other_answers_are_final_and_say_what_the_provider_said(status: int) -> None:
    out = classify(answer(status, b'{"code": 21211, "message": "invalid To number"}'))
    assert not out.ok and not out.retryable and not out.provider_fault and out.retry_after_s is None
    assert out.error == f'HTTP {status}: {{"code": 21211, "message": "invalid To number"}}'


def test_a_final_answers_body_is_cut_and_made_text() -> None:
    out = classify(answer(400, b"\xff\xfe" + b"x" * 500))
    assert out.error.startswith("HTTP 400: \ufffd\ufffd") and len(out.error) == len("HTTP 400: ") + 200


@pytest.mark.parametrize("exc", [
    TimeoutError(),
    aiohttp.ServerDisconnectedError(),
    ConnectionRefusedError(111, "Connection refused"),
    aiohttp.ClientPayloadError("truncated"),
])
def test_a_request_that_got_no_answer_is_retried_and_counts_toward_the_breaker(exc: BaseException) -> None:
    out = transport_failure(exc)
    assert not out.ok and out.retryable and out.provider_fault and out.retry_after_s is None
    assert out.error.startswith(type(exc).__name__)


def test_a_transport_failures_text_is_bounded() -> None:
    assert len(transport_failure(OSError("x" * 1000)).error) == 300


def test_success_is_no_fault_and_no_conflict_by_default() -> None:
    assert Outcome(True) == Outcome(True, "", retryable=True, retry_after_s=None, provider_fault=False,
                                    conflict=False)
