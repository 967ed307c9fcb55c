"""The run page's "Soak" section per scenario: its latency drift and what the soak probe read over time, as small
charts. Rendering only: the windows, slopes and intervals are the ones summary.json holds (ScenarioSummary.drift,
measured once by the analysis stage), and the verdict is drift.assess's, the same call the judge makes on them, so
the page and verdicts.json cannot disagree. The probe file is read only to draw its readings."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator

from bookbench.analysis import drift
from bookbench.analysis.drift import LatencyDrift
from bookbench.artifacts import soak
from bookbench.artifacts.soak import Probe
from bookbench.artifacts.summary import ResourceTrend, Summary
from bookbench.config.scenarios import Thresholds
from bookbench.report.charts import COLORS, TITLE_PAD, WIDTH, _svg

MIN_PROBES = 2  # fewer: the section is left out (a scenario that ended within one probe period)
# Charts over time only from a minute of probes (and of steady state for the P95 windows): a shorter scenario's
# probe readings are its first -> last values in the table, and its per-second charts above already draw its
# latency. Seven small charts per scenario of seconds were a third of the page's rendering time and said nothing.
CHARTS_FROM_S = 60.0
_STATE_COLORS = {"active": "#e67700", "idle": "#1864ab", "idle in transaction": "#c92a2a", "hidden": "#868e96"}


@dataclass(frozen=True)
class SoakSection:
    probes: int
    every_s: float  # median gap between probes
    latency: LatencyDrift
    trends: list[ResourceTrend]
    autovacuum_runs: int | None  # autovacuum runs on the booking tables between the first and the last probe
    not_measured: dict[str, str]  # part -> why, as the last probe said
    latency_chart: str | None
    probe_chart: str | None  # None: under CHARTS_FROM_S of probes
    span_s: float  # from the first probe to the last
    judged_from_s: float  # the 5-minute rule as summary.json says the analysis applied it
    charts_from_s: float = CHARTS_FROM_S


def sections(run_dir: Path, summary: Summary, thresholds: Thresholds) -> dict[str, SoakSection]:
    """Per scenario with a soak file of at least MIN_PROBES probes, its section."""
    out = {}
    for name, sc in summary.scenarios.items():
        probes = soak.read(soak.soak_file(run_dir, name))
        if len(probes) < MIN_PROBES:
            continue
        found = drift.assess(sc, thresholds)
        latency = found.latency
        gaps = sorted(b.t - a.t for a, b in itertools.pairwise(probes))
        span = probes[-1].t - probes[0].t
        out[name] = SoakSection(
            probes=len(probes), every_s=gaps[len(gaps) // 2], latency=latency, trends=found.trends,
            autovacuum_runs=_autovacuums(probes), not_measured=probes[-1].not_measured,
            latency_chart=_latency_chart(latency, f"{name}: P95 per {latency.window_s} s window"
                                         + (" and its fitted line" if latency.slope else ""))
            if latency.windows and latency.fit.steady_s >= CHARTS_FROM_S else None,
            probe_chart=_probe_chart(probes, f"{name}: what the soak probe read ({len(probes)} probes)")
            if span >= CHARTS_FROM_S else None, span_s=span,
            judged_from_s=sc.drift.judged_from_s if sc.drift else drift.JUDGED_FROM_S)
    return out


def _autovacuums(probes: list[Probe]) -> int | None:
    def total(p: Probe) -> int | None:
        counts = [t.autovacuum_count for t in (p.tables or {}).values() if t.autovacuum_count is not None]
        return sum(counts) if counts else None

    first, last = total(probes[0]), total(probes[-1])
    return None if first is None or last is None else last - first


def _latency_chart(d: LatencyDrift, title: str) -> str:
    fig, ax = plt.subplots(figsize=(WIDTH, 2.6))
    minutes = [w.mid_s / 60 for w in d.windows]
    ax.plot(minutes, [w.p95_ms for w in d.windows], marker="o", markersize=3, linewidth=1,
            color=COLORS["p95"], label="P95 per window")
    if d.slope is not None:
        ends = [d.windows[0].mid_s, d.windows[-1].mid_s]
        ax.plot([e / 60 for e in ends], [d.slope.at(e) for e in ends], color=COLORS["limit"], linestyle="--",
                linewidth=1.2, label=f"fitted: {d.slope.per_hour:+.2f} ms/h")
    ax.set_xlabel("minutes since the first request")
    ax.set_ylabel("P95 (ms)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncol=2, frameon=False, fontsize=8)
    ax.set_title(title, loc="left", fontsize=10, pad=TITLE_PAD)
    return _svg(fig)


def _probe_chart(probes: list[Probe], title: str) -> str:
    """Six small panels on one clock: service RSS, connections by state, table + index size, dead tuples,
    autovacuum runs so far, outbox backlog. A panel with nothing measured says so in its middle."""
    t0 = probes[0].t
    minutes = [(p.t - t0) / 60 for p in probes]
    fig, grid = plt.subplots(2, 3, figsize=(WIDTH, 4.4), sharex=True)
    axes = list(grid.flat)
    fig.suptitle(title, x=0.01, ha="left", fontsize=10)

    def draw(ax: Axes, label: str, values: list[float | None]) -> None:
        pts = [(m, v) for m, v in zip(minutes, values, strict=True) if v is not None]
        if pts:
            ys = [v for _, v in pts]
            ax.plot([m for m, _ in pts], ys, color=COLORS["rps"], linewidth=1.2)
            # a flat series stays flat: the axis spans at least 2 % of the level, so 0.05 MB of noise on 64 MB is
            # not drawn as a cliff
            low, high = min(ys), max(ys)
            if high > 0 and high - low < 0.02 * high:
                ax.set_ylim((low + high) / 2 - 0.01 * high, (low + high) / 2 + 0.01 * high)
        else:
            ax.text(0.5, 0.5, "not measured", transform=ax.transAxes, ha="center", color="#868e96")
        ax.set_title(label, fontsize=9, loc="left")

    draw(axes[0], "service RSS (MB)", [drift.resource_value(p, "service RSS") for p in probes])
    states = sorted({s for p in probes for s in (p.connections or {})})
    for state in states:
        axes[1].plot(minutes, [(p.connections or {}).get(state, 0) for p in probes], linewidth=1.2,
                     label=f"connections {state}", color=_STATE_COLORS.get(state))
    if not states:
        axes[1].text(0.5, 0.5, "not measured", transform=axes[1].transAxes, ha="center", color="#868e96")
    axes[1].set_title("connections by state", fontsize=9, loc="left")
    axes[1].yaxis.set_major_locator(MaxNLocator(integer=True))
    draw(axes[2], "booking tables + indexes (MB)", [drift.resource_value(p, "table + index size") for p in probes])
    draw(axes[3], "dead tuples", [drift.resource_value(p, "dead tuples") for p in probes])
    draw(axes[4], "autovacuum runs so far", [_autovacuums([probes[0], p]) for p in probes])
    axes[4].yaxis.set_major_locator(MaxNLocator(integer=True))
    draw(axes[5], "outbox backlog (rows)", [drift.resource_value(p, "outbox backlog") for p in probes])
    for ax in axes:
        ax.tick_params(labelsize=7)
        ax.grid(axis="y", alpha=0.3)
    for ax in axes[3:]:
        ax.set_xlabel("minutes since the first probe")
    fig.tight_layout()
    if states:  # below the panels, never over a plotting area
        fig.legend(*axes[1].get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, 0.0),
                   ncol=len(states), fontsize=8, frameon=False)
    return _svg(fig)
