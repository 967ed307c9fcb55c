"""manifest.json: the typed model round-trips, and a file of another format or with unknown keys is refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bookbench.artifacts import manifest
from bookbench.artifacts.manifest import Counts, ScenarioEntry
from bookbench.errors import ArtifactError

KNOWN = Path(__file__).resolve().parents[1] / "data" / "known_run"


def test_round_trip(tmp_path: Path) -> None:
    shutil.copytree(KNOWN, tmp_path / "run")
    m = manifest.read(tmp_path / "run")
    m.status, m.reason = "interrupted", "stopped"
    m.scenarios["extra"] = ScenarioEntry(definition={"stages": []}, planned_s=3, status="not run")
    m.scenarios["known"].counts = Counts(samples=7, locust=7, service=None)
    manifest.write(tmp_path / "run", m)
    again = manifest.read(tmp_path / "run")
    assert again == m
    assert again.scenarios["known"].counts == Counts(samples=7, locust=7, service=None)
    assert not list((tmp_path / "run").glob("*.tmp"))  # written atomically


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(format_version=1), "format_version 1; this bookbench reads version 2"),
    (lambda d: d.update(surprise=True), "surprise: Extra inputs are not permitted"),
    (lambda d: d["scenarios"]["known"].update(status="exploded"), "scenarios.known.status"),
    (lambda d: d.pop("run_id"), "run_id: Field required"),
])
def test_a_drifted_manifest_is_refused_with_the_key(tmp_path: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    data = json.loads((KNOWN / "manifest.json").read_text())
    change(data)
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=message.replace("(", r"\(")):
        manifest.read(tmp_path)


def test_not_json_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"format_version": 2,\n oops}')
    with pytest.raises(ArtifactError, match=r"manifest.json is not valid JSON \(line 2\)"):
        manifest.read(tmp_path)
