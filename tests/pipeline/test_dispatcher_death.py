"""SIGKILL of one notification dispatcher mid-load (issue 24 item 6): the fault is named and the run fails (exit 3)
as for any part that dies, yet Path B is still measured: the surviving dispatcher finishes the dead one's claimed
rows when their lease runs out, nothing stays pending, and a message the dead one had already handed to a provider
is recognised there by its idempotency key (answered as the first time), never delivered twice.

The fake providers' own de-duplication is checked first, on the processes the runs start."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pyarrow.parquet as pq
import pytest
import yaml

from bookbench.artifacts.notifications import read_received
from bookbench.pipeline.notify import FAKE_CREDENTIALS, NotifyStack
from bookbench.pipeline.supervisor import PIDS_FILE
from target_service.notify import IDEMPOTENCY_HEADER
from tests.pipeline.test_faults import _descendants, _finish, _none_alive, _start
from tests.pipeline.test_run import TINY


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NotifyStack]:
    """The two fake providers as the runs start them (no dispatcher: the test sends the requests itself)."""
    tmp = tmp_path_factory.mktemp("fakes")
    stack = NotifyStack("postgresql://unused", 0, tmp / "logs", tmp / "records")
    stack.start()
    try:
        yield stack
    finally:
        stack.stop()


def _sms(stack: NotifyStack, key: str) -> dict:  # type: ignore[type-arg]
    sid, token = FAKE_CREDENTIALS["BOOKBENCH_TWILIO_ACCOUNT_SID"], FAKE_CREDENTIALS["BOOKBENCH_TWILIO_AUTH_TOKEN"]
    resp = httpx.post(f"{stack.url('sms')}/2010-04-01/Accounts/{sid}/Messages.json",
                      data={"To": "+15550001111", "Body": "hi"}, auth=(sid, token), headers={IDEMPOTENCY_HEADER: key})
    assert resp.status_code == 201, resp.text
    return resp.json()  # type: ignore[no-any-return]


@pytest.mark.integration  # the fakes are uvicorn processes
def test_the_fake_sms_gateway_answers_a_repeated_key_as_the_first_time(fakes: NotifyStack) -> None:
    first, again = _sms(fakes, "sms-confirm-1"), _sms(fakes, "sms-confirm-1")
    other = _sms(fakes, "sms-confirm-2")
    assert again == first and other["sid"] != first["sid"]  # the same message, not a second one
    state = httpx.get(f"{fakes.url('sms')}/_bookbench/state").json()
    assert (state["accepted"], state["redeliveries"]) == (2, 1)
    assert [(r["key"], r.get("redelivery", False)) for r in read_received(fakes.record_file("sms"))] == [
        ("sms-confirm-1", False), ("sms-confirm-1", True), ("sms-confirm-2", False)]


@pytest.mark.integration  # the fakes are uvicorn processes
def test_the_fake_calendar_answers_a_repeated_insert_or_delete_as_the_first_time(fakes: NotifyStack) -> None:
    cal = fakes.url("calendar")
    token = httpx.post(f"{cal}/token", data={
        "grant_type": "refresh_token", "client_id": FAKE_CREDENTIALS["BOOKBENCH_GOOGLE_CLIENT_ID"],
        "client_secret": FAKE_CREDENTIALS["BOOKBENCH_GOOGLE_CLIENT_SECRET"],
        "refresh_token": FAKE_CREDENTIALS["BOOKBENCH_GOOGLE_REFRESH_TOKEN"]}).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    events = f"{cal}/calendar/v3/calendars/provider-1/events"
    body = {"id": "bb1", "start": {"dateTime": "2031-01-01T09:00:00+00:00"},
            "end": {"dateTime": "2031-01-01T09:30:00+00:00"}}
    inserts = [httpx.post(events, json=body, headers={**auth, IDEMPOTENCY_HEADER: "bb1"}) for _ in range(2)]
    assert [r.status_code for r in inserts] == [200, 200] and inserts[0].json() == inserts[1].json()
    # without the key, Google's own guard still refuses a second event with that id
    assert httpx.post(events, json=body, headers=auth).status_code == 409
    deletes = [httpx.delete(f"{events}/bb1", headers={**auth, IDEMPOTENCY_HEADER: "bb1-delete"}) for _ in range(2)]
    assert [r.status_code for r in deletes] == [204, 204]  # the repeat gets the first answer, not a 410
    state = httpx.get(f"{cal}/_bookbench/state").json()
    assert (state["events"], state["redeliveries"]) == (0, 2)
    flags = [(r["op"], r.get("redelivery", False), r.get("duplicate", False))
             for r in read_received(fakes.record_file("calendar"))]
    assert flags == [("insert", False, False), ("insert", True, True), ("insert", False, True),
                     ("delete", False, False), ("delete", True, False)]


def test_the_drain_goes_on_while_one_dispatcher_and_both_providers_live(tmp_path: Path) -> None:
    stack = NotifyStack("postgresql://unused", 2, tmp_path, tmp_path)
    def proc(code: int) -> subprocess.Popen[bytes]:  # a real process that has exited with `code`, or still runs
        return subprocess.Popen([sys.executable, "-c", f"import sys, time; time.sleep({60 if code < 0 else 0}); "
                                 f"sys.exit({max(code, 0)})"])
    running = proc(-1)
    try:
        stack.procs = {"fake_sms": running, "fake_calendar": running, "dispatcher1": proc(0), "dispatcher2": running}
        stack.procs["dispatcher1"].wait()
        assert stack.dead() is not None and stack.cannot_deliver() is None  # the other one takes over
        stack.procs["dispatcher2"] = proc(3)
        stack.procs["dispatcher2"].wait()
        assert stack.cannot_deliver() == ("no dispatcher left: dispatcher1 exited with code 0, dispatcher2 exited "
                                          "with code 3")
        stack.procs["dispatcher2"], stack.procs["fake_calendar"] = running, proc(1)
        stack.procs["fake_calendar"].wait()
        assert stack.cannot_deliver() == "fake_calendar exited with code 1 (see logs/fake_calendar.log)"
    finally:
        running.kill()
        running.wait()


def _pid_of(run_dir: Path, role: str) -> int:
    children = json.loads((run_dir / PIDS_FILE).read_text())["children"]
    return next(int(c["pid"]) for c in children if c["role"] == role)


@pytest.mark.integration
@pytest.mark.slow
def test_sigkill_of_a_dispatcher_still_measures_delivery_with_no_duplicate(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # the dispatchers' HTTP timeout sets their claim's lease (2 x timeout + 5 s): 9 s here instead of 15 s, so the
    # dead one's rows fall due well within the file's 20 s drain timeout (the fake providers answer in milliseconds)
    monkeypatch.setenv("BOOKBENCH_HTTP_TIMEOUT_S", "2")
    spec = yaml.safe_load(TINY.read_text())
    spec["notifications"]["dispatchers"] = 2  # one to kill, one to survive it
    two = tmp_path / "two_dispatchers.yaml"
    two.write_text(yaml.safe_dump(spec))
    proc, run_dir = _start(tmp_path, notifications=True, scenario_file=two)  # `long`: 60 s of 3 users
    time.sleep(2)  # bookings, and so deliveries, under way
    children = _descendants(proc.pid)
    victim = psutil.Process(_pid_of(run_dir, "dispatcher1"))
    assert "target_service.notify" in " ".join(victim.cmdline())
    killed_at = time.time()
    victim.send_signal(signal.SIGKILL)
    out, manifest = _finish(proc, run_dir, 3)

    # the run still ends as a fault of the notifications part (a process of the stack died), named
    long = manifest["scenarios"]["long"]
    assert manifest["status"] == "failed" and long["fault"] == "notifications", long
    assert long["aborted"].startswith("dispatcher1 exited with code -9"), long["aborted"]
    assert long["notifications_unmeasured"] is None

    # ... but delivery is measured: the survivor drained the outbox, nothing lost, nothing left pending
    notes = json.loads((run_dir / "summary.json").read_text())["scenarios"]["long"]["notifications"]
    assert notes is not None, "no notifications block in the summary"
    assert notes["exited"] == {"dispatcher1": -9} and notes["drain_s"] is not None, notes["drain_stopped"]
    assert notes["acknowledged_bookings"] > 0 and notes["bookings_without_outbox_rows"] == 0
    assert notes["lost"] == 0 and notes["dead"] == 0
    for channel in ("sms", "calendar"):
        assert notes[channel]["delivered"] == notes[channel]["expected"] > 0, (channel, notes[channel])
    facts = json.loads((run_dir / "notifications" / "long.json").read_text())
    outbox = pq.read_table(run_dir / "notifications" / facts["outbox"]["file"]).to_pylist()  # facts format 2
    assert len(outbox) == facts["outbox"]["rows"] > 0
    assert Counter(r["status"] for r in outbox) == {"sent": len(outbox)}

    # the providers' own records: every message of the run accepted exactly once; each repeat of a key was a
    # redelivery they recognised, and the summary counts exactly those
    keys = {r["dedup_key"] for r in outbox}
    records = [r for p in ("sms", "calendar") for r in read_received(run_dir / "notifications" / f"received_{p}.jsonl")
               if r["key"] in keys]
    accepted = Counter(r["key"] for r in records if not r.get("redelivery") and not r.get("duplicate"))
    assert set(accepted) == keys and max(accepted.values()) == 1  # no duplicate at the provider, none missing
    repeats = len(records) - len({r["key"] for r in records})
    assert repeats == sum(1 for r in records if r.get("redelivery"))
    assert notes["redelivered"] == repeats >= 0 and notes["duplicates"] == 0
    assert notes["calendar"]["duplicate_inserts_refused"] == 0
    last = max(r["t"] for r in records)
    print(f"\nqueued {notes['queued']}, redelivered {repeats}, drained {notes['drain_s']:.1f} s after the load, "
          f"last receipt {last - killed_at:.1f} s after the kill")

    verdicts = {v["metric"]: v for v in json.loads((run_dir / "verdicts.json").read_text())["verdicts"]
                if v["kind"] == "notification" and v["scenario"] == "long"}
    assert verdicts["notifications_lost"]["status"] == "pass" and verdicts["sms_p95_s"]["status"] == "pass"
    assert "--target-url" not in json.dumps(verdicts)
    html = (run_dir / "report.html").read_text()
    assert f"{repeats} redelivered after dispatcher1 died" in html and "0 duplicates at the provider" in html
    assert "dispatcher1 exited with code -9" in out
    _none_alive(children, tmp_path)
