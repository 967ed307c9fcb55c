"""scenarios.yaml validation: the shipped file loads; each kind of mistake names its key path."""

from pathlib import Path

import pytest
import yaml

from bookbench.config.scenarios import SHIPPED_SCENARIOS, ScenarioFileError, load_scenarios

SHIPPED = SHIPPED_SCENARIOS


def test_shipped_file_has_the_seed_scenarios_and_targets() -> None:
    spec = load_scenarios(SHIPPED)
    assert [n for n, sc in spec.scenarios.items() if sc.default] == ["single", "ramp_up", "burst", "sustained"]
    outage = spec.scenarios["provider_outage"]
    assert not outage.default and outage.faults is not None and outage.faults.sms.outages[0].length_s == 12
    assert spec.thresholds.global_.sms_p95_s == 30 and spec.thresholds.global_.notifications_lost == 0
    assert spec.scenarios["burst"].stages[0].users == 30
    assert spec.scenarios["sustained"].batches == 10
    assert spec.thresholds.global_.p95_ms == 500 and spec.thresholds.global_.error_rate == 0.001
    assert spec.review_targets.p99_ms == 800 and spec.review_targets.availability == 0.999
    assert spec.alert_rules.p95_ms == 600 and spec.alert_rules.throughput_drop == 0.30
    quick = spec.scenarios["burst"].scaled(spec.quick_factor)
    assert quick.duration_s == pytest.approx(spec.scenarios["burst"].duration_s * spec.quick_factor)


def test_scenario_faults_scale_with_quick_mode_and_keep_the_default_latency() -> None:
    spec = load_scenarios(SHIPPED)
    quick = spec.scenarios["provider_outage"].scaled(0.2)
    faults = spec.notifications.faults_for(quick.faults)
    window = faults.sms.outages[0]
    assert window.start_s == pytest.approx(2.4) and window.length_s == pytest.approx(2.4)
    assert faults.sms.latency == spec.notifications.providers.sms.latency  # the outage did not drop the latency
    assert faults.calendar == spec.notifications.providers.calendar


def test_quick_mode_keeps_the_ramp_shape() -> None:
    """A shortened ramp_up still reaches 5 users at the end of its first stage, not 1 user and then a jump."""
    from bookbench.config.shape import users_at

    full = load_scenarios(SHIPPED).scenarios["ramp_up"]
    quick = full.scaled(0.2)
    ramp = quick.stages[0]
    assert ramp.spawn_rate == pytest.approx(full.stages[0].spawn_rate / 0.2)  # type: ignore[operator]
    assert ramp.users / ramp.spawn_rate == pytest.approx(ramp.duration_s)  # type: ignore[operator]
    assert users_at(quick.stages, ramp.duration_s * 0.5) == (5, ramp.spawn_rate)


def _write(tmp_path: Path, mutate: object) -> Path:
    raw = yaml.safe_load(SHIPPED.read_text())
    mutate(raw)  # type: ignore[operator]
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


BAD = [
    ("negative users", lambda r: r["scenarios"]["burst"]["stages"][0].update(users=-1),
     "scenarios.burst.stages.0.users"),
    ("unknown task", lambda r: r["task_mix"]["weights"].update(bookTwice=1), "task_mix.weights.bookTwice"),
    ("bad protocol", lambda r: r["task_mix"].update(protocol="grpc"), "task_mix.protocol"),
    ("warm-up too long", lambda r: r["scenarios"]["single"].update(warmup_s=999), "warmup_s (999)"),
    ("typo key", lambda r: r["scenarios"]["single"].update(stagez=[]), "scenarios.single.stagez"),
    ("no stages", lambda r: r["scenarios"]["single"].update(stages=[]), "scenarios.single.stages"),
    ("error rate > 1", lambda r: r["thresholds"]["global"].update(error_rate=5), "thresholds.global.error_rate"),
    ("threshold for unknown scenario", lambda r: r["thresholds"]["per_scenario"].update(nope={}),
     "unknown scenarios: nope"),
    ("wrong version", lambda r: r.update(version=2), "version"),
]


@pytest.mark.parametrize(("case", "mutate", "where"), BAD, ids=[b[0] for b in BAD])
def test_bad_files_name_the_key_path(tmp_path: Path, case: str, mutate: object, where: str) -> None:
    with pytest.raises(ScenarioFileError) as info:
        load_scenarios(_write(tmp_path, mutate))
    assert where in str(info.value)


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    with pytest.raises(ScenarioFileError, match="cannot read"):
        load_scenarios(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("scenarios: [unclosed")
    with pytest.raises(ScenarioFileError, match="not valid YAML"):
        load_scenarios(broken)


def test_digest_changes_with_the_load_definition(tmp_path: Path) -> None:
    base = load_scenarios(SHIPPED).digest()
    changed = load_scenarios(_write(tmp_path, lambda r: r["scenarios"]["burst"]["stages"][0].update(users=31)))
    assert changed.digest() != base
    same_load = load_scenarios(_write(tmp_path, lambda r: r["alert_rules"].update(p95_ms=700)))
    assert same_load.digest() == base


def test_a_scenario_paces_its_own_callers(tmp_path: Path) -> None:
    """think_time_s on a scenario replaces the task mix's for it alone, shapes the load (the digest moves), and is
    checked like the task mix's."""
    base = load_scenarios(SHIPPED)
    paced = load_scenarios(_write(tmp_path, lambda r: r["scenarios"]["burst"].update(
        think_time_s={"min": 0.5, "max": 1.0})))
    assert paced.scenarios["burst"].think(paced.task_mix).max == 1.0
    assert paced.scenarios["ramp_up"].think(paced.task_mix) == base.task_mix.think_time_s
    assert paced.digest() != base.digest()
    with pytest.raises(ScenarioFileError, match="think_time_s"):
        load_scenarios(_write(tmp_path, lambda r: r["scenarios"]["burst"].update(think_time_s={"min": 2, "max": 1})))


def test_sweep_sizes_parse() -> None:
    import typer

    from bookbench.cli.sweep import parse_size

    assert [parse_size(s) for s in ("10k", "100K", "1M", "2500", "1.5m")] == [10_000, 100_000, 1_000_000, 2500,
                                                                              1_500_000]
    with pytest.raises(typer.BadParameter, match="not a size"):
        parse_size("lots")
