"""A remote worker's samples over Locust's channel (load/ship.py), without Locust: the worker's chunks fed to the
master's receiver as the messages would carry them; a whole file is kept, a damaged or foreign one is named."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bookbench.artifacts import sample_parts
from bookbench.load import ship

WORKER = "loadbox.example_0123abcd"


def _sealed(folder: Path, process: str, n: int) -> list[sample_parts.SealedFile]:
    writer = sample_parts.PartWriter(folder, process)
    for start in range(0, n, 700):  # a few parts: the seal merges them into one file
        writer.extend([(1000.0 + i, 1.5, "checkAvailability", "GET", 200, 1, "", 10, 2, process, None)
                       for i in range(start, min(n, start + 700))])
        writer.flush()
    return sample_parts.seal(folder, run_dir=folder)


def _messages(folder: Path, sealed: list[sample_parts.SealedFile], monkeypatch: Any) -> list[tuple[str, Any]]:
    monkeypatch.setattr(ship, "CHUNK_BYTES", 4096)  # several chunks from a small file
    sent: list[tuple[str, Any]] = []
    ship.send_files(folder, sealed, lambda kind, data: sent.append((kind, data)), None)
    return sent


def _deliver(receiver: ship.Receiver, sent: list[tuple[str, Any]]) -> list[tuple[str, bool]]:
    acks = []
    for kind, data in sent:
        if kind == ship.CHUNK:
            if (ack := receiver.chunk(WORKER, data)) is not None:
                acks.append(ack)
        else:
            receiver.finished(WORKER, data)
    return acks


def test_a_whole_file_arrives_with_its_rows_and_sha256(tmp_path: Path, monkeypatch: Any) -> None:
    worker_dir = tmp_path / "worker"
    sealed = _sealed(worker_dir, sample_parts.process_name(WORKER), 3000)
    sent = _messages(worker_dir, sealed, monkeypatch)
    chunks = [d for k, d in sent if k == ship.CHUNK]
    assert len(chunks) > 2 and all(len(d["data"]) <= 4096 for d in chunks)
    assert "sha256" in chunks[-1] and all("sha256" not in d for d in chunks[:-1])
    run = tmp_path / "run" / "samples" / "s"
    receiver = ship.Receiver(run)
    receiver.hello(WORKER)
    assert _deliver(receiver, sent) == [(f"{sample_parts.process_name(WORKER)}.parquet", True)]
    assert receiver.pending() == set() and receiver.problems == []
    got = sample_parts.files(run)
    assert [p.name for p in got] == [Path(sealed[0].path).name] and sample_parts.digest(got[0]) == sealed[0].sha256
    assert sample_parts.rows_in(got[0]) == 3000
    receiver.write_receipt(ship.receipt_path(run))
    assert ship.read_receipt(tmp_path / "run" / "samples" / "s_remote.json") == []
    assert json.loads(ship.receipt_path(run).read_text())["delivered"] == {WORKER: {got[0].name: 3000}}


def test_a_lost_chunk_a_changed_byte_and_a_foreign_name_are_named_never_kept(tmp_path: Path,
                                                                                monkeypatch: Any) -> None:
    worker_dir = tmp_path / "worker"
    sealed = _sealed(worker_dir, sample_parts.process_name(WORKER), 3000)
    sent = _messages(worker_dir, sealed, monkeypatch)
    run = tmp_path / "run"
    lost = ship.Receiver(run / "lost")
    assert _deliver(lost, sent[:1] + sent[2:]) == [(Path(sealed[0].path).name, False)]
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
    _deliver(foreign, [(k, {**d, "file": "w1.parquet"} if k == ship.CHUNK else d) for k, d in sent])
    assert "sent a file named 'w1.parquet', not its own; refused" in foreign.problems[0]
    assert not (run / "foreign" / "w1.parquet").exists()


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
