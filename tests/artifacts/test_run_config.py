"""config/<scenario>.json (RunConfig): written and read back whole, a wrong version or field refused by name, and
the plan a remote worker gets carries none of the master's paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bookbench.artifacts import run_config
from bookbench.artifacts.run_config import RUN_CONFIG_FORMAT_VERSION, RunConfig, RunDataset, TargetRef, TenantIds
from bookbench.config.scenarios import SHIPPED_SCENARIOS, load_scenarios
from bookbench.errors import ArtifactError


def _config(tmp_path: Path) -> RunConfig:
    spec = load_scenarios(SHIPPED_SCENARIOS)
    name = next(iter(spec.scenarios))
    return RunConfig(scenario_name=name, scenario=spec.scenarios[name], task_mix=spec.task_mix,
                     dataset=RunDataset(**spec.dataset.model_dump(), past_days=365, anchor="2026-01-05"),
                     processes=3, samples_path=str(tmp_path / "samples.csv.gz"),
                     target=TargetRef(profile="reference-rest",
                                      tenants=[TenantIds(id=1, contacts=[1, "c-2"], providers=[5])]))


def test_a_config_reads_back_as_written_with_its_version(tmp_path: Path) -> None:
    config = _config(tmp_path)
    path = tmp_path / "s.json"
    run_config.write(path, config)
    assert json.loads(path.read_text())["format_version"] == RUN_CONFIG_FORMAT_VERSION
    assert run_config.read(path) == config


def test_another_version_or_a_bad_field_is_refused_naming_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    data = _config(tmp_path).model_dump(mode="json")
    path.write_text(json.dumps({**data, "format_version": 99}))
    with pytest.raises(ArtifactError, match=r"s\.json has format_version 99; this bookbench reads version 1"):
        run_config.read(path)
    path.write_text(json.dumps({**data, "processes": 0}))
    with pytest.raises(ArtifactError, match=r"s\.json: processes: "):
        run_config.read(path)
    path.write_text(json.dumps({**data, "secret": "x"}))  # an unknown key: a typo, or a newer writer
    with pytest.raises(ArtifactError, match=r"s\.json: secret: Extra inputs"):
        run_config.read(path)


def test_a_config_without_a_version_is_refused_and_a_minimal_one_with_it_reads(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    minimal = {"task_mix": {"weights": {"checkAvailability": 1}}, "scenario": None}
    path.write_text(json.dumps(minimal))
    with pytest.raises(ArtifactError, match=r"s\.json: format_version: missing"):
        run_config.read(path)
    path.write_text(json.dumps({"format_version": RUN_CONFIG_FORMAT_VERSION, **minimal}))
    config = run_config.read(path)
    assert config.format_version == RUN_CONFIG_FORMAT_VERSION and config.scenario is None


def test_without_paths_keeps_everything_but_the_master_s_files(tmp_path: Path) -> None:
    config = _config(tmp_path)
    public = config.without_paths()
    assert public.samples_path is None
    assert public.model_dump(exclude={"samples_path"}) == config.model_dump(exclude={"samples_path"})
