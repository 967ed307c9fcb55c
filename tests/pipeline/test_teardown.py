"""Teardown that cannot be hijacked (issue 24, part 2): SIGHUP stops a run like SIGTERM, also when the terminal
it wrote to is gone; a stopped service or postmaster is continued and stopped; the clean-up's own trouble never
replaces the run's reason; nothing is left running. Real runs on the tiny dataset, real processes."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import psutil
import pytest

from bookbench.db.conn import run_with
from bookbench.db.embedded import SUPERUSER, EmbeddedPostgres, bin_dir
from bookbench.errors import DatabaseError
from bookbench.pipeline import interrupts
from bookbench.pipeline.stack import stop_group
from bookbench.pipeline.supervisor import PIDS_FILE, reap
from bookbench.pipeline.teardown import Teardown
from tests.budget import budget
from tests.pipeline.test_faults import _descendants, _finish, _start
from tests.pipeline.test_run import SECRET, TINY
from tests.sample_rows import recording

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _living(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return alive


def _of_this_test(tmp: Path) -> list[str]:
    """Any live process whose command line or working directory is inside this test's folder (the postmaster
    names its data dir, every postgres process works in it)."""
    found = []
    for proc in psutil.process_iter(["cmdline", "cwd", "status"]):
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cmd = " ".join(proc.info["cmdline"] or [])
        if str(tmp) in cmd or str(tmp) in (proc.info["cwd"] or ""):
            found.append(f"{proc.pid} {proc.info['status']} {cmd}")
    return found


def _nothing_left(procs: list[psutil.Process], tmp: Path) -> None:
    time.sleep(0.5)
    assert _living(procs) == [], [p.cmdline() for p in _living(procs)]
    assert _of_this_test(tmp) == []


def _postmaster(tmp: Path) -> psutil.Process:
    return psutil.Process(int((tmp / "pg" / "data" / "postmaster.pid").read_text().split()[0]))


def _service(children: list[psutil.Process]) -> psutil.Process:
    found = [c for c in children if "uvicorn" in " ".join(c.cmdline())]
    assert len(found) == 1, [c.cmdline() for c in children]
    return found[0]


def _iso(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def test_sighup_stops_the_run_like_sigterm_and_a_stopped_service_is_still_stopped(tmp_path: Path) -> None:
    proc, run_dir = _start(tmp_path, "--scenarios", "long")
    children = _descendants(proc.pid)
    service = _service(children)
    proc.send_signal(signal.SIGHUP)
    assert proc.stdout is not None
    before = ""
    # the scenario's last line (counts, after the audit) comes right before the clean-up stops the service
    while "requests recorded" not in before and proc.poll() is None:
        before += proc.stdout.readline()
    service.suspend()  # SIGSTOP: the teardown finds the service stopped
    out, manifest = _finish(proc, run_dir, 130)
    out = before + out
    assert manifest["status"] == "interrupted", manifest["reason"]
    assert "SIGHUP" in manifest["reason"], manifest["reason"]
    assert manifest["scenarios"]["long"]["status"] == "interrupted"
    assert manifest["cleanup_problems"] == []
    assert "SIGHUP" in (run_dir / "report.html").read_text()
    assert "stopped by SIGHUP" in out
    assert not service.is_running() or service.status() == psutil.STATUS_ZOMBIE
    _nothing_left(children, tmp_path)


def _take_terminal() -> None:
    # in the child, after setsid (start_new_session): the pty on fd 0 becomes its controlling terminal, so closing
    # the master is a real hang-up (the kernel sends SIGHUP), as when a terminal window or SSH session closes
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_a_closed_terminal_stops_the_run_and_the_clean_up_survives_writes_to_it(tmp_path: Path) -> None:
    master, slave = pty.openpty()
    cmd = [sys.executable, "-m", "bookbench", "run", "--scenario-file", str(TINY), "--out", str(tmp_path / "out"),
           "--data-dir", str(tmp_path / "pg"), "--key-secret", SECRET, "--skip-checks", "--no-notifications",
           "--scenarios", "long"]
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                            preexec_fn=_take_terminal)
    os.close(slave)
    seen = b""
    deadline = time.monotonic() + budget(120)
    samples: list[Path] = []
    while time.monotonic() < deadline and not samples and proc.poll() is None:
        if select.select([master], [], [], 0.3)[0]:
            try:
                seen += os.read(master, 65536)  # the terminal is read, as a terminal would be, until it closes
            except OSError:
                break
        samples = recording(tmp_path / "out", "long")
    assert samples, seen[-2000:].decode(errors="replace")
    run_dir = samples[0]
    children = _descendants(proc.pid)
    os.close(master)  # the terminal goes away: bookbench gets SIGHUP and every later write to it fails (EIO)
    assert proc.wait(timeout=budget(150)) == 130
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted" and "SIGHUP" in manifest["reason"], manifest["reason"]
    long = manifest["scenarios"]["long"]
    assert long["counts"]["samples"] > 0 and long["audit"] is not None
    assert "SIGHUP" in (run_dir / "report.html").read_text()
    assert not (run_dir / "logs" / "bookbench.log").exists() or "Traceback" not in (
        run_dir / "logs" / "bookbench.log").read_text()
    _nothing_left(children, tmp_path)


def test_a_stopped_postmaster_is_named_and_stopped_without_pg_ctl_taking_over_the_reason(tmp_path: Path) -> None:
    proc, run_dir = _start(tmp_path, "--scenarios", "long")
    children = _descendants(proc.pid)
    postmaster = _postmaster(tmp_path)
    servers = [postmaster, *postmaster.children(recursive=True)]
    stopped_at = time.time()
    postmaster.suspend()  # SIGSTOP, and nobody continues it but bookbench's teardown
    out, manifest = _finish(proc, run_dir, 3)
    assert "run failed" in out
    long = manifest["scenarios"]["long"]
    assert long["fault"] == "database", long["aborted"]
    assert "database" in manifest["reason"] and "pg_ctl" not in manifest["reason"], manifest["reason"]
    assert "\n" not in manifest["reason"]
    assert manifest["cleanup_problems"] == [], manifest["cleanup_problems"]
    assert "database" in (run_dir / "report.html").read_text()
    # detection is the watchdog's (10 s bound); teardown used to wait 60 s in pg_ctl before failing
    detected_s = _iso(long["ended_at"]) - stopped_at
    teardown_s = _iso(manifest["ended_at"]) - _iso(long["ended_at"])
    print(f"stopped postmaster: named after {detected_s:.1f} s, integrity + teardown {teardown_s:.1f} s")
    assert detected_s < budget(45)
    assert teardown_s < budget(45)
    assert _living(servers) == [], [p.cmdline() for p in _living(servers)]
    _nothing_left(children, tmp_path)


def _sleeper_with_term_handler() -> subprocess.Popen[bytes]:
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *_: sys.exit(7))\n"
            "print('ready', flush=True)\n"
            "time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    return proc


def test_stop_group_continues_a_stopped_process_so_that_it_ends_by_its_own_term_handler() -> None:
    proc = _sleeper_with_term_handler()
    assert proc.stdout is not None
    proc.stdout.close()
    os.kill(proc.pid, signal.SIGSTOP)
    deadline = time.monotonic() + budget(10)
    while psutil.Process(proc.pid).status() != psutil.STATUS_STOPPED and time.monotonic() < deadline:
        time.sleep(0.01)
    assert psutil.Process(proc.pid).status() == psutil.STATUS_STOPPED
    stop_group(proc, timeout=30)
    # 7: its TERM handler ran (a stopped process never runs it: it would have been SIGKILLed after 30 s, -9)
    assert proc.returncode == 7


def test_the_reaper_continues_a_stopped_leftover_of_a_killed_run(tmp_path: Path) -> None:
    """bookbench SIGKILLed while one of its children was stopped: the next command's reaper still ends it by TERM."""
    folder = tmp_path / "out" / "killed-run"
    folder.mkdir(parents=True)
    manifest = json.loads((Path(__file__).parents[1] / "data" / "known_run" / "manifest.json").read_text())
    manifest["status"] = "running"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    owner = subprocess.Popen([sys.executable, "-c", "pass"])
    owner.wait()  # the "killed" bookbench: its pid is gone
    child = _sleeper_with_term_handler()
    assert child.stdout is not None
    child.stdout.close()
    waiter = threading.Thread(target=child.wait, daemon=True)  # collects the exit at once (no zombie to wait on)
    waiter.start()
    os.kill(child.pid, signal.SIGSTOP)
    (folder / PIDS_FILE).write_text(json.dumps({
        "owner": {"pid": owner.pid, "started": 1.0, "role": "bookbench"},
        "children": [{"pid": child.pid, "started": psutil.Process(child.pid).create_time(), "role": "service"}]}))
    handled = reap(tmp_path / "out", grace_s=30)
    waiter.join(5)
    assert len(handled) == 1 and "stopped 1 leftover" in handled[0], handled
    assert child.returncode == 7  # its TERM handler ran: continued, not SIGKILLed after the 30 s grace
    assert json.loads((folder / "manifest.json").read_text())["status"] == "killed"


@pytest.fixture
def signals_installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """interrupts.install() in this process, undone afterwards (handlers and the standard streams)."""
    monkeypatch.setattr(sys, "stdout", sys.stdout)
    monkeypatch.setattr(sys, "stderr", sys.stderr)
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    interrupts.install()
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_a_failing_clean_up_step_is_noted_and_the_first_error_stays(tmp_path: Path, signals_installed: None) -> None:
    teardown = Teardown(tmp_path / "bookbench.log")
    ran: list[str] = []

    def stop_server() -> None:
        raise DatabaseError("pg_ctl failed: server does not shut down\nserver log (last lines):\nold line")

    def stop_service() -> None:
        os.kill(os.getpid(), signal.SIGHUP)  # the terminal closes during the clean-up: the step still ends
        ran.append("service stopped")

    with pytest.raises(DatabaseError, match="stopped answering"), ExitStack() as stack:
        teardown.callback(stack, "stopping the embedded server", stop_server)
        teardown.callback(stack, "stopping the service", stop_service)
        raise DatabaseError("the database stopped answering")
    assert ran == ["service stopped"]
    assert teardown.problems == ["stopping the embedded server failed: pg_ctl failed: server does not shut down "
                                 f"(details in {tmp_path / 'bookbench.log'})"]
    assert "old line" in (tmp_path / "bookbench.log").read_text()  # the server log's tail: in the log only
    assert interrupts.received() == "SIGHUP"


def test_a_signal_during_the_clean_up_of_a_finished_run_stops_it_after_the_step(
        tmp_path: Path, signals_installed: None) -> None:
    teardown = Teardown(tmp_path / "bookbench.log")
    ran: list[str] = []

    def step(name: str) -> None:
        if name == "service":
            os.kill(os.getpid(), signal.SIGTERM)
        ran.append(name)

    with pytest.raises(KeyboardInterrupt), ExitStack() as stack:
        teardown.callback(stack, "stopping the embedded server", lambda: step("server"))
        teardown.callback(stack, "stopping the service", lambda: step("service"))
    # the step under way ended, then the stop came, and the steps after it still ran
    assert ran == ["service", "server"]
    assert teardown.problems == []
    assert interrupts.reason() == "stopped by SIGTERM"


def test_a_shutdown_that_hangs_is_forced_and_said_in_one_line(tmp_path: Path) -> None:
    """A fast shutdown waits for every WAL sender's client to confirm the last WAL: a stopped pg_receivewal holds it
    for ever. stop() forces it after its bound, leaves no process, and says so in one line."""
    pg = EmbeddedPostgres(tmp_path / "pg")
    state = pg.start()
    (tmp_path / "wal").mkdir()
    receiver = subprocess.Popen([str(bin_dir() / "pg_receivewal"), "-D", str(tmp_path / "wal"), "-h", "127.0.0.1", "-p",
                                 str(state.port), "-U", SUPERUSER, "--no-loop"], start_new_session=True)
    try:
        # streaming, not only connected: a walsender still in its start-up exchange is simply ended by a fast
        # shutdown (a slow machine stopped the receiver there, and the stop then needed no force)
        deadline = time.monotonic() + budget(30)
        while run_with(state.dsn(), lambda c: c.fetchval(
                "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")) == 0:
            assert time.monotonic() < deadline and receiver.poll() is None, "pg_receivewal never streamed"
            time.sleep(0.1)
        servers = [psutil.Process(state.pid), *psutil.Process(state.pid).children(recursive=True)]
        receiver.send_signal(signal.SIGSTOP)
        with pytest.raises(DatabaseError) as raised:
            pg.stop(timeout=3)
        message = str(raised.value)
        assert "\n" not in message and "did not stop within 3 s" in message, message
        assert "stopped it with an immediate shutdown" in message or "stopped it with SIGKILL" in message, message
        assert _living(servers) == [] and pg.postmaster_pid() is None
        assert pg.start().pid != state.pid  # the cluster starts again (recovering from the WAL)
        assert pg.stop()
    finally:
        receiver.kill()
        receiver.wait()


def test_the_report_shows_a_clean_up_problem_beside_the_reason(tmp_path: Path) -> None:
    from bookbench.cli.terminal import render_and_print

    run_dir = tmp_path / "run"
    shutil.copytree(Path(__file__).parents[1] / "data" / "known_run", run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    problem = ("stopping the embedded server failed: the embedded server did not stop within 30 s (pg_ctl failed: "
               "pg_ctl: server does not shut down); stopped it with SIGKILL")
    manifest.update(status="failed", reason="the database stopped answering", cleanup_problems=[problem])
    (run_dir / "manifest.json").write_text(json.dumps(manifest))
    render_and_print(run_dir, None, html=True)
    page = (run_dir / "report.html").read_text()
    assert "(the database stopped answering)" in page
    assert f"clean-up after the run: {problem}" in page


def test_sighup_is_a_stop_like_sigterm_unless_nohup_asked_to_ignore_it(signals_installed: None) -> None:
    assert signal.getsignal(signal.SIGHUP) not in (signal.SIG_IGN, signal.SIG_DFL)
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(0.05)  # the handler runs in the main thread at the next bytecode
    assert interrupts.reason() == "stopped by SIGHUP (the terminal or SSH session was closed)"
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as `nohup bookbench run ...` starts it
    interrupts.install()
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN


def test_a_standard_stream_whose_reader_is_gone_swallows_writes(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the pipe's reader (a terminal, `| tee`) is gone: writes fail with EPIPE
    with open(write_end, "w", closefd=False) as raw:
        stream = interrupts._tolerant(raw)
        stream.write("progress line\n" * 1000)
        stream.flush()  # no BrokenPipeError: the output is dropped
        assert os.path.samestat(os.fstat(write_end), os.stat(os.devnull))  # later writers (children) too
        stream.write("the run folder\n")
        stream.flush()
    os.close(write_end)
