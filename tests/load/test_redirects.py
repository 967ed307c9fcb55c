"""A 3xx from the target is an answer to record, never a hop: a loopback target that redirects every request to
another host gets Locust's callers and the checks to record the status, and no process tries to connect there.

The whole exchange runs in a network namespace with only loopback up (tests/netns.py), so a client that did follow
could not reach the other host, and `strace` shows whether it tried."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.budget import budget
from tests.netns import FAR_ADDRESS, run_isolated

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


class _Redirect(BaseHTTPRequestHandler):
    """Answers every request with 302 or 307 (alternately) to FAR_ADDRESS; counts what it answered."""

    answered = 0

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        type(self).answered += 1
        self.send_response(307 if type(self).answered % 2 else 302)
        self.send_header("Location", f"http://{FAR_ADDRESS}:9{self.path}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, *_: object) -> None:
        pass


def inside(workdir: str) -> None:
    """Run in the namespace: the redirecting target, two seconds of the real locustfile against it, and the smoke
    checks; what each saw goes to result.json."""
    from bookbench.pipeline.locust_proc import LOCUSTFILE
    from tests.conftest import SMALL
    from tests.sample_rows import rows

    folder = Path(workdir)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    samples = folder / "samples" / "redirects"
    config = {"format_version": 1,
              "task_mix": {"protocol": "rest", "weights": {"checkAvailability": 1, "bookClinicAppointment": 1},
                           "think_time_s": {"min": 0.05, "max": 0.05}},
              "dataset": {k: getattr(SMALL, k) for k in ("orgs", "providers_per_org", "contacts", "appointments",
                                                         "seed")},
              "scenario": None, "samples_dir": str(samples)}
    (folder / "config.json").write_text(json.dumps(config))
    subprocess.run([sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "2", "-r", "2",
                    # two seconds of requests on an idle machine, stretched on a busy one: the callers' start-up
                    # (imports, the pool of ids) must not eat the run
                    "-t", f"{budget(2):.0f}s", "--host", base, "--loglevel", "WARNING", "--exit-code-on-error", "0"],
                   env={**os.environ, "BOOKBENCH_RUN_CONFIG": str(folder / "config.json")},
                   check=True, capture_output=True, timeout=budget(60))
    df = {c: [r[c] for r in rows(folder, "redirects")] for c in ("status", "ok", "error")}
    check = subprocess.run([sys.executable, "-m", "bookbench", "check", "smoke", "--base-url", base],
                           capture_output=True, text=True, timeout=budget(60))
    server.shutdown()
    (folder / "result.json").write_text(json.dumps({
        "answered": _Redirect.answered, "statuses": sorted({int(s) for s in df["status"]}),
        "ok": sorted({int(o) for o in df["ok"]}), "errors": sorted(set(df["error"]))[:5], "requests": len(df["status"]),
        "check_code": check.returncode, "check_out": check.stdout + check.stderr}))


def test_a_redirect_to_another_host_is_recorded_and_never_followed(tmp_path: Path) -> None:
    code = f"from tests.load.test_redirects import inside; inside({str(tmp_path)!r})"
    run = run_isolated([sys.executable, "-c", code], tmp_path, cwd=ROOT)
    assert run.proc.returncode == 0, run.proc.stderr[-2000:]
    result = json.loads((tmp_path / "result.json").read_text())
    # nothing tried the other host: not Locust's callers, not the checks
    assert run.tried(FAR_ADDRESS) == [], run.tried(FAR_ADDRESS)[:5]
    # every Locust request got its 3xx, recorded as a failed sample with that status
    assert result["requests"] > 0 and result["answered"] >= result["requests"]
    assert set(result["statuses"]) <= {302, 307} and result["ok"] == [0], result
    # read through the target profile: no rule takes a 3xx, so it is counted as unclassified with its status
    assert all("HTTP 302" in e or "HTTP 307" in e for e in result["errors"]), result["errors"]
    # the checks fail on the 3xx and say so
    assert result["check_code"] == 1 and "30" in result["check_out"], result["check_out"][-2000:]
