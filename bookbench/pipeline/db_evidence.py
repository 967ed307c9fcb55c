"""The database under one scenario's load (issue 27, items 1, 2 and 5): pg_stat_statements snapshots once a second
and the wait-event sampler while the load runs; after it, the statements' deltas over the measured window, the
sampled waits, the service's own per-request timing and (embedded server only) the plans auto_explain logged, into
db/statements.json, db/waits.json and db/<scenario>_auto_explain.jsonl.

`with ..., DbEvidence(...) as evidence:` around the load, then `evidence.finish(first request, warm-up, load end)`
once the samples are sealed. Nothing here may fail the run: what cannot be measured is said ("not measured: ...").
A --dsn database is only read: no reset, no setting, no auto_explain.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from bookbench import net
from bookbench.artifacts.db_evidence import (
    ScenarioStatements,
    ScenarioWaits,
    ServiceTiming,
    StatementsFile,
    WaitsFile,
    Window,
    read_statements,
    read_waits,
    write_statements,
    write_waits,
)
from bookbench.artifacts.files import write_file
from bookbench.artifacts.folder import RunFolder
from bookbench.artifacts.soak import soak_file
from bookbench.db import statements
from bookbench.db.soak_probe import SOAK_APPLICATION_NAME
from bookbench.db.waits import SAMPLER_APPLICATION_NAME, SERVICE_APPLICATION_NAME, WaitSampler
from bookbench.pipeline.interference import listener_pids, local_port
from bookbench.pipeline.narration import Narrator, say
from bookbench.pipeline.soak import SoakSampler, period
from bookbench.pipeline.statement_snapshots import APPLICATION_NAME, HEAD_S, QUERY_TIMEOUT_S, Snapshots

log = logging.getLogger(__name__)

WAIT_HZ = 15.0
# the snapshot taken as the load stopped marks the window's end when it came this soon after (nothing of the load
# runs in between: Locust has ended)
FINAL_SLACK_S = 2.0
AUTO_EXPLAIN_CAP = 200  # plans kept per scenario
AUTO_EXPLAIN_QUERY_CHARS = 2000
TIMING_NOT_REPORTED = "not measured: the target does not report per-request timing"
NO_DATABASE = "not measured: the run has no database connection (a target-only run)"


class DbEvidence:
    """One scenario's database evidence. `dsn` None: a run without a database (target-only): every part says so.
    `embedded_log`: the embedded server's log, read for auto_explain's plans (None on a --dsn database).
    `same_role_as_service`: the service connects with the run's own DSN (the reference service started by the run),
    so the statements of the run's own role are the service's. `probe_every_s`: the scenario's soak probe period
    (scenarios.yaml), given like its warm-up."""

    def __init__(self, folder: RunFolder, name: str, dsn: str | None, base_url: str, narrate: Narrator,
                 warmup_s: float, probe_every_s: float, embedded_log: Path | None = None,
                 same_role_as_service: bool = False) -> None:
        self.folder = folder
        self.name = name
        self.dsn = dsn
        self.base_url = base_url.rstrip("/")
        self.narrate = narrate
        self.warmup_s = warmup_s
        self.probe_every_s = probe_every_s
        self.embedded_log = embedded_log
        self.same_role = same_role_as_service
        self.snapshots: Snapshots | None = None
        self.waits: WaitSampler | None = None
        self.soak: SoakSampler | None = None
        self.log_offset = 0
        self.load_end: float | None = None  # when the load stopped (set on leaving the `with`)

    def __enter__(self) -> DbEvidence:
        if self.embedded_log is not None:
            with contextlib.suppress(OSError):
                self.log_offset = self.embedded_log.stat().st_size
        if self.dsn:
            self.snapshots = Snapshots(self.dsn, self.same_role, time.time() + self.warmup_s + HEAD_S)
            self.snapshots.start()
            self.waits = WaitSampler(self.dsn, SERVICE_APPLICATION_NAME, WAIT_HZ)
            self.waits.__enter__()
        self.soak = self._soak_sampler()
        self.soak.__enter__()
        return self

    def _soak_sampler(self) -> SoakSampler:
        """The soak probe (issue 28): every scenario's, at its scenarios.yaml period; the service's memory only when
        the run started the service (found by the port it listens on), never a --target-url's."""
        every = period(self.probe_every_s)
        pids: list[int] | None = None
        why = "not measured: the service is not a process of this run (--target-url)"
        if self.same_role:
            port = local_port(self.base_url)
            pids = listener_pids(port) if port is not None else []
            if not pids:
                pids, why = None, "not measured: the service's process was not found by its port"
        return SoakSampler(soak_file(self.folder.root, self.name), self.dsn, pids, every, rss_why=why)

    def __exit__(self, *_: object) -> None:
        self.load_end = time.time()
        if self.soak is not None:
            self.soak.__exit__(None, None, None)
        if self.waits is not None:
            self.waits.__exit__(None, None, None)
        if self.snapshots is not None:
            # the last snapshot and the texts, one query timeout at most: a database that stopped answering (a
            # fault) must not hold the run up; the thread ends on its own and the file says what was missed
            self.snapshots.stop(timeout=QUERY_TIMEOUT_S + 1)

    # -- after the load -------------------------------------------------------------------------------------------
    def finish(self, first_request: float | None, warmup_s: float, load_end: float | None) -> None:
        """Write this scenario's part of db/statements.json and db/waits.json (and its auto_explain plans), and say
        in one line each what could not be measured. Never raises into the run: a failure is logged and said."""
        try:
            self._finish(first_request, warmup_s, load_end)
        except Exception as exc:  # the evidence is a report's section, never the run's outcome
            log.exception("database evidence of %s", self.name)
            self.narrate(say(f"  {self.name}: database evidence not recorded: {type(exc).__name__}: {exc}",
                             soft_wrap=True))

    def _finish(self, first_request: float | None, warmup_s: float, load_end: float | None) -> None:
        window: Window | None = None
        why_no_window = None
        if first_request is None:
            why_no_window = "not measured: the scenario recorded no request"
        elif load_end is None or load_end <= first_request + warmup_s:
            why_no_window = "not measured: the load ended within the warm-up"
        else:
            window = Window(start=first_request + warmup_s, end=load_end,
                            note="the scenario's first request plus its warm-up, to the end of the load")
        stmts = self._statements(window, why_no_window)
        waits = self._waits(window, why_no_window)
        self._write(stmts, waits)
        for part, reason in (("statements", stmts.not_measured), ("wait events", waits.waits_not_measured),
                             ("service timing", waits.service_not_measured)):
            if reason:
                self.narrate(say(f"  {self.name}: {part} {reason}", soft_wrap=True))
        if not stmts.not_measured:
            top = stmts.statements[0] if stmts.statements else None
            lead = (f", most time: {top.label} {top.total_exec_ms:,.0f} ms in {top.calls:,} calls" if top else "")
            plans = (f", {stmts.auto_explain_plans} slow plans in {self.folder.auto_explain(self.name).name}"
                     if stmts.auto_explain_plans else "")
            assert stmts.window is not None
            self.narrate(say(f"  {self.name}: {len(stmts.statements)} statements over "
                             f"{stmts.window.end - stmts.window.start:.1f} s{lead}{plans}", soft_wrap=True))

    def _statements(self, window: Window | None, why_no_window: str | None) -> ScenarioStatements:
        snaps = self.snapshots
        if snaps is None:
            return ScenarioStatements(window=None, statements=[], not_measured=NO_DATABASE)
        if snaps.not_measured or snaps.source is None:
            return ScenarioStatements(window=None, statements=[],
                                      not_measured=snaps.not_measured or "not measured: no snapshot was taken")
        if window is None:
            return ScenarioStatements(window=None, statements=[], not_measured=why_no_window)
        marks = snaps.marks()
        starts = [m for m in marks if m.snap.taken >= window.start]
        ends = [m for m in marks if m.snap.taken <= window.end or (m.final and m.snap.taken <= window.end
                                                                     + FINAL_SLACK_S)]
        if not starts or not ends or ends[-1].snap.taken <= starts[0].snap.taken:
            failed = f" ({snaps.failures} snapshots failed: {snaps.last_failure})" if snaps.failures else ""
            return ScenarioStatements(window=None, statements=[],
                                      not_measured=f"not measured: no two snapshots inside the window{failed}")
        a, b = starts[0], ends[-1]
        after = (f"{window.end - b.snap.taken:.1f} s before the end" if b.snap.taken <= window.end
                 else f"{b.snap.taken - window.end:.1f} s after the end, taken as the load stopped")
        note = f"nearest snapshots: +{a.snap.taken - window.start:.1f} s after the warm-up, {after}"
        if snaps.failures:
            note += f"; {snaps.failures} snapshots failed ({snaps.last_failure})"
        deltas = statements.delta(a.snap, b.snap, snaps.texts)
        plans, found = self._auto_explain(window, snaps.database)
        return ScenarioStatements(window=Window(start=a.snap.taken, end=b.snap.taken, note=note), statements=deltas,
                                  auto_explain_plans=plans, auto_explain_found=found)

    def _waits(self, window: Window | None, why_no_window: str | None) -> ScenarioWaits:
        if self.waits is None or not self.dsn:
            waits_why: str | None = NO_DATABASE
            shares = None
        elif window is None:
            waits_why, shares = why_no_window, None
        else:
            shares = self.waits.shares(window.start, window.end)
            waits_why = None if shares is not None else (
                self.waits.not_measured or self.waits.reason(window.start, window.end)
                or "not measured: no sampling instant inside the window")
            if waits_why and not waits_why.startswith("not measured"):
                waits_why = f"not measured: {waits_why}"
        service, service_why = (None, why_no_window) if window is None else self._service_timing(window)
        return ScenarioWaits(window=window, waits=shares, waits_not_measured=waits_why, service=service,
                             service_not_measured=service_why)

    def _service_timing(self, window: Window) -> tuple[ServiceTiming | None, str | None]:
        try:
            resp = net.get(f"{self.base_url}/stats/timing", params={"since": window.start, "until": window.end},
                           timeout=5)  # as /stats is asked: a stopped service is no wait
        except httpx.HTTPError as exc:
            return None, f"not measured: GET /stats/timing failed: {type(exc).__name__}: {exc}"
        if resp.status_code in (404, 405):
            return None, TIMING_NOT_REPORTED
        if resp.status_code != 200:
            return None, f"not measured: GET /stats/timing answered {resp.status_code}"
        try:
            body: Any = resp.json()
            if isinstance(body, dict) and body.get("requests") == 0:
                return None, "not measured: the service recorded no request in the window"
            return ServiceTiming.model_validate(body), None
        except (ValueError, ValidationError):
            return None, f"{TIMING_NOT_REPORTED} (its /stats/timing answer is not bookbench's timing)"

    def _auto_explain(self, window: Window, database: str | None) -> tuple[int | None, int | None]:
        """(plans kept, plans found) in the window; (None, None) when auto_explain is not ours to read (--dsn)."""
        if self.embedded_log is None or database is None:
            return None, None
        try:
            with self.embedded_log.open("rb") as fh:
                size = fh.seek(0, 2)
                fh.seek(self.log_offset if self.log_offset <= size else 0)  # a log rotated meanwhile: from its start
                text = fh.read().decode(errors="replace")
        except OSError:
            return None, None
        found = [p for p in parse_auto_explain(text)
                 if p["database"] == database and p["application"] not in OWN_APPLICATIONS
                 and window.start <= p["time"] <= window.end]
        kept = found[:AUTO_EXPLAIN_CAP]
        path = self.folder.auto_explain(self.name)
        if kept:
            write_file(path, "".join(json.dumps(p) + "\n" for p in kept), reserve=self.folder.root)
        return len(kept), len(found)

    def _write(self, stmts: ScenarioStatements, waits: ScenarioWaits) -> None:
        """Read-modify-write: each scenario adds its own key (scenarios run one after the other)."""
        f = self.folder
        f.statements.parent.mkdir(parents=True, exist_ok=True)
        source = self.snapshots.source.describe() if self.snapshots and self.snapshots.source else None
        if source and self.embedded_log is not None:
            source += ", auto_explain on the embedded server"
        current = read_statements(f.statements) or StatementsFile(source=source or "not measured", scenarios={})
        if source:
            current.source = source
        current.scenarios[self.name] = stmts
        write_statements(f.statements, current, reserve=f.root)
        waits_file = read_waits(f.waits) or WaitsFile(scenarios={})
        waits_file.scenarios[self.name] = waits
        write_waits(f.waits, waits_file, reserve=f.root)


# -- auto_explain's plans in the embedded server's log ----------------------------------------------------------------
# the evidence's own connections: their statements are not the load's
OWN_APPLICATIONS = frozenset({APPLICATION_NAME, SAMPLER_APPLICATION_NAME, SOAK_APPLICATION_NAME})
# embedded.LOG_LINE_PREFIX ("%m [%p] t=%n %qdb=%d,app=%a ") then auto_explain's message; the plan follows on lines
# that start with a tab
_PLAN_HEAD = re.compile(r"^.*? \[(?P<pid>\d+)\] t=(?P<t>\d+(?:\.\d+)?) db=(?P<db>[^,]*),app=(?P<app>.*) "
                        r"LOG:  duration: (?P<ms>\d+(?:\.\d+)?) ms  plan:\s*$")


def parse_auto_explain(text: str) -> list[dict[str, Any]]:
    """Every auto_explain JSON plan in a piece of the server log: time (epoch s, as logged), duration_ms, pid,
    database, application, query (its text, cut at 2,000 characters) and plan. A plan cut short (the log's last,
    still being written) is left out."""
    out: list[dict[str, Any]] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        head = _PLAN_HEAD.match(lines[i])
        i += 1
        if head is None:
            continue
        body: list[str] = []
        while i < len(lines) and lines[i].startswith("\t"):
            body.append(lines[i][1:])
            i += 1
        try:
            doc = json.loads("\n".join(body))
        except ValueError:
            continue
        if not isinstance(doc, dict) or "Plan" not in doc:
            continue
        out.append({"time": float(head["t"]), "duration_ms": float(head["ms"]), "pid": int(head["pid"]),
                    "database": head["db"], "application": head["app"],
                    "query": statements.collapse(str(doc.get("Query Text", "")))[:AUTO_EXPLAIN_QUERY_CHARS],
                    "plan": doc["Plan"]})
    return out
