"""Every HTTP client bookbench opens, made here: redirects never followed, and one TLS context for all of them.

A 3xx is the target's answer, recorded as such, never a hop to a host the loopback rule did not judge.

httpx builds a new TLS context for every client it creates, loading the CA bundle each time: about 20 ms of CPU,
even for a plain-HTTP request to 127.0.0.1. The pipeline asks its health probes, the service's counters and the
fake providers' state once a second or more for the length of every run, so that cost was a tenth of a core,
taken from the service and Locust it measures (measured: one `httpx.get` on loopback 25.7 ms of CPU with its own
context, 2.6 ms with the shared one). The shared context is httpx's own default, made once.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import httpx


@functools.cache
def tls() -> ssl.SSLContext:
    """httpx's default context (certifi's CA bundle, hostname checks), made once per process; contexts are safe to
    share between threads and clients."""
    return httpx.create_ssl_context()


def _settings(kwargs: dict[str, Any]) -> dict[str, Any]:
    return {**kwargs, "follow_redirects": False, "verify": tls()}


def client(**kwargs: Any) -> httpx.Client:
    return httpx.Client(**_settings(kwargs))


def async_client(**kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(**_settings(kwargs))


def request(method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One request on a client of its own (as `httpx.get` does), with the shared TLS context."""
    with client(timeout=kwargs.pop("timeout", 5.0)) as c:
        return c.request(method, url, **kwargs)


def get(url: str, **kwargs: Any) -> httpx.Response:
    return request("GET", url, **kwargs)


def put(url: str, **kwargs: Any) -> httpx.Response:
    return request("PUT", url, **kwargs)
