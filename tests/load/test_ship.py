"""A remote worker's samples over Locust's channel (load/ship.py), without Locust: the worker's chunks fed to the
master's receiver as the messages would carry them; every part arrives whole or is named, and the worker never has
more than its window of chunks unacknowledged."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any

from bookbench.artifacts import sample_parts
from bookbench.load import ship

WORKER = "loadbox.example_0123abcd"
PROCESS = sample_parts.process_name(WORKER)


def _parts(folder: Path, n: int, per_part: int = 700) -> list[Path]:
    """The worker's parts as its recorder leaves them: never merged, each a whole file."""
    writer = sample_parts.PartWriter(folder, WORKER)
    for start in range(0, n, per_part):
        writer.extend([(1000.0 + i, 1.5, "checkAvailability", "GET", 200, 1, "", 10, 2, WORKER, None)
                       for i in range(start, min(n, start + per_part))])
        writer.flush()
    return sample_parts.files(folder)


def _messages(folder: Path, monkeypatch: Any) -> list[tuple[str, Any]]:
    """Every message the worker sends, with a window that never fills (the master's answers come later)."""
    monkeypatch.setattr(ship, "CHUNK_BYTES", 4096)  # several chunks from a small file
    sent: list[tuple[str, Any]] = []
    window = ship.Window(stall_s=1.0, sleep=lambda s: None, size=10 ** 9)
    ship.send_files(folder, lambda kind, data: sent.append((kind, data)), None, window)
    return sent


def _deliver(receiver: ship.Receiver, sent: list[tuple[str, Any]]) -> list[tuple[str, bool]]:
    """The files the master's acks name, with whether it kept them."""
    kept = []
    for kind, data in sent:
        if kind == ship.CHUNK:
            if "file" in (ack := receiver.chunk(WORKER, data)):
                kept.append((ack["file"], ack["ok"]))
        else:
            receiver.finished(WORKER, data)
    return kept


def test_each_part_arrives_whole_with_its_rows_and_sha256_and_seals_on_the_master(tmp_path: Path,
                                                                                  monkeypatch: Any) -> None:
    worker_dir = tmp_path / "worker"
    parts = _parts(worker_dir, 3000)
    assert len(parts) == 5
    sent = _messages(worker_dir, monkeypatch)
    chunks = [d for k, d in sent if k == ship.CHUNK]
    assert [d["seq"] for d in chunks] == list(range(len(chunks))) and all(len(d["data"]) <= 4096 for d in chunks)
    # every part goes as it is, its own size, sha256 and rows on its own last chunk
    last = {d["file"]: d for d in chunks if "sha256" in d}
    assert sorted(last) == [p.name for p in parts]
    for part in parts:
        assert last[part.name]["sha256"] == sample_parts.digest(part)
        assert last[part.name]["rows"] == sample_parts.rows_in(part) and last[part.name]["size"] == part.stat().st_size
    assert sent[-1] == (ship.DONE, {"files": {p.name: sample_parts.rows_in(p) for p in parts}, "failed": None,
                                  "problems": []})
    run = tmp_path / "run" / "samples" / "s"
    receiver = ship.Receiver(run)
    receiver.hello(WORKER)
    assert _deliver(receiver, sent) == [(p.name, True) for p in parts]
    assert receiver.pending() == set() and receiver.problems == []
    receiver.write_receipt(ship.receipt_path(run))
    assert ship.read_receipt(tmp_path / "run" / "samples" / "s_remote.json") == []
    assert sum(json.loads(ship.receipt_path(run).read_text())["delivered"][WORKER].values()) == 3000
    # the master's seal merges them, as a local worker's parts
    sealed = sample_parts.seal(run)
    assert [(Path(s.path).name, s.rows) for s in sealed] == [(f"{PROCESS}.parquet", 3000)]


def test_a_compacted_worker_ships_its_segments_and_parts_and_the_master_seals_them(tmp_path: Path,
                                                                                   monkeypatch: Any) -> None:
    worker_dir = tmp_path / "worker"
    writer = sample_parts.PartWriter(worker_dir, WORKER, compact_every=2)
    for k in range(5):
        writer.extend([(1000.0 + 10 * k + i, 1.5, "checkAvailability", "GET", 200, 1, "", 10, 2, WORKER, None)
                       for i in range(10)])
        writer.flush()
        writer.compaction.drain()
    writer.compaction.finish()  # as the worker's transfer does first (load/collect.py)
    # parts 0-3: two segments, merged into one; part 4 waits for a second
    shipped = [p.name for p in sample_parts.files(worker_dir)]
    assert shipped == [f"{PROCESS}-000004.parquet", f"{PROCESS}-seg000000_000003.parquet"]
    sent = _messages(worker_dir, monkeypatch)
    assert sent[-1] == (ship.DONE, {"files": dict.fromkeys(shipped, 10) | {shipped[1]: 40}, "failed": None,
                                  "problems": []})
    run = tmp_path / "run" / "samples" / "s"
    receiver = ship.Receiver(run)
    assert _deliver(receiver, sent) == [(name, True) for name in shipped] and receiver.problems == []
    # another worker's segment is refused as another's part is
    other = ship.Receiver(tmp_path / "other")
    _deliver(other, [(k, {**d, "file": "w1-seg000000_000003.parquet"} if k == ship.CHUNK else d) for k, d in sent])
    assert "sent a file named 'w1-seg000000_000003.parquet', not one of its own parts or segments" in other.problems[0]
    sealed = sample_parts.seal(run)
    assert [(Path(s.path).name, s.rows) for s in sealed] == [(f"{PROCESS}.parquet", 50)]


def test_a_lost_chunk_a_changed_byte_and_a_foreign_name_are_named_never_kept(tmp_path: Path,
                                                                                monkeypatch: Any) -> None:
    worker_dir = tmp_path / "worker"
    first = _parts(worker_dir, 3000, per_part=3000)[0]
    sent = _messages(worker_dir, monkeypatch)
    run = tmp_path / "run"
    lost = ship.Receiver(run / "lost")
    assert _deliver(lost, sent[:1] + sent[2:]) == [(first.name, False)]
    assert "arrived damaged: a chunk at byte 8,192 where byte 4,096 was due" in lost.problems[0]
    assert "never arrived whole" not in " ".join(lost.problems)  # named once, for what happened
    changed = ship.Receiver(run / "changed")
    flipped = [(k, {**d, "data": b"x" + d["data"][1:]} if k == ship.CHUNK and d["offset"] == 4096 else d)
               for k, d in sent]
    _deliver(changed, flipped)
    assert "arrived damaged" in changed.problems[0] and "sha256" in changed.problems[0]
    for receiver in (lost, changed):
        assert sample_parts.files(receiver.folder) == [] and not list(receiver.folder.glob("*.tmp"))
    foreign = ship.Receiver(run / "foreign")
    _deliver(foreign, [(k, {**d, "file": "w1-000000.parquet"} if k == ship.CHUNK else d) for k, d in sent])
    assert "sent a file named 'w1-000000.parquet', not one of its own parts or segments; refused" in foreign.problems[0]
    assert not (run / "foreign" / "w1-000000.parquet").exists()
    assert f"{first.name} from worker {WORKER} (3,000 rows) never arrived whole" in foreign.problems[1]


class _Link:
    """The channel between worker and master: chunks queue; each of the worker's waits lets the master take the
    oldest one and its ack come back."""

    def __init__(self, receiver: ship.Receiver) -> None:
        self.receiver = receiver
        self.queued: deque[dict[str, Any]] = deque()
        self.window = ship.Window(stall_s=5.0, sleep=self.wait, size=3)
        self.most_unacked = 0
        self.done: dict[str, Any] | None = None

    def send(self, kind: str, data: dict[str, Any]) -> None:
        if kind == ship.DONE:
            self.done = data
            return
        self.queued.append(data)
        self.most_unacked = max(self.most_unacked, self.window.sent - self.window.acked)

    def wait(self, _: float) -> None:
        if self.queued:
            self.window.acknowledged(self.receiver.chunk(WORKER, self.queued.popleft())["chunks"])


def test_the_worker_never_has_more_than_its_window_unacknowledged(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(ship, "CHUNK_BYTES", 1024)
    parts = _parts(tmp_path / "worker", 3000)
    link = _Link(ship.Receiver(tmp_path / "run"))
    ship.send_files(tmp_path / "worker", link.send, None, link.window)
    while link.queued:
        link.wait(0)
    assert link.window.sent > 10 * link.window.size  # without the window every chunk would be queued at once
    assert link.most_unacked == link.window.size
    assert link.done == {"files": {p.name: sample_parts.rows_in(p) for p in parts}, "failed": None, "problems": []}
    assert link.receiver.problems == [] and len(sample_parts.files(link.receiver.folder)) == len(parts)


def test_a_master_that_stops_acknowledging_ends_the_transfer_named(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setattr(ship, "CHUNK_BYTES", 1024)
    _parts(tmp_path / "worker", 3000)
    sent: list[tuple[str, Any]] = []
    window = ship.Window(stall_s=0.05, sleep=lambda s: None, size=2)
    ship.send_files(tmp_path / "worker", lambda kind, data: sent.append((kind, data)), "disk full", window)
    assert [k for k, _ in sent] == [ship.CHUNK, ship.CHUNK, ship.DONE]
    assert sent[-1][1]["failed"] == "disk full"
    [stalled] = sent[-1][1]["problems"]
    assert stalled.startswith("the master acknowledged no chunk for 0.05 s (2 unacknowledged; ")
    assert stalled.endswith(f"not sent); its samples files stay in {tmp_path / 'worker'}")
    receiver = ship.Receiver(tmp_path / "run")
    _deliver(receiver, sent)
    cut, *missing, recording, named = receiver.problems
    assert cut.endswith("-000000.parquet from worker loadbox.example_0123abcd was cut off after 2,048 bytes")
    assert len(missing) == 4 and all("never arrived whole" in m for m in missing)
    assert recording == f"worker {WORKER} stopped recording: disk full" and named == f"worker {WORKER}: {stalled}"
    assert not list(receiver.folder.glob("*.tmp")) and sample_parts.files(receiver.folder) == []


def test_a_worker_that_never_sends_is_named(tmp_path: Path) -> None:
    receiver = ship.Receiver(tmp_path / "samples" / "s")
    receiver.hello(WORKER)
    receiver.hello("other_1")
    receiver.finished("other_1", {"files": {}, "failed": "disk full writing x (No space left on device)"})
    receiver.give_up(receiver.pending(), "sent nothing for 35 s")
    assert receiver.pending() == set()
    assert receiver.problems == ["worker other_1 stopped recording: disk full writing x (No space left on device)",
                                 f"worker {WORKER} sent nothing for 35 s: its samples are not in the run"]
    assert ship.read_receipt(tmp_path / "missing.json") is None
