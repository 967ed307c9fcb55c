"""The service's own count of handled requests, read before and after each scenario."""

from __future__ import annotations

import httpx

from bookbench import net


def service_handled(base_url: str) -> int | None:
    """The service's own count of handled requests (None for a deployment without /stats)."""
    try:
        resp = net.get(f"{base_url}/stats", timeout=5)  # a 3xx is not the count
        return int(resp.json()["handled"]) if resp.status_code == 200 else None
    except (httpx.HTTPError, ValueError, KeyError):
        return None
