"""Charts as inline SVG strings, drawn only from summary.json's precomputed series (no statistics here).

Reading rules every chart follows: full page width; legends above the plotting area, never over the data;
latency axes on a log scale labelled in human units (1 ms, 10 ms, 1 s); limits drawn where they apply; counts
on integer ticks; the last second of a scenario, which is partial, is left out of per-second series.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from bookbench.artifacts.summary import Counts, Distribution, Notifications, TimePoint

plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                     "svg.fonttype": "none", "figure.dpi": 96})
COLORS = {"p50": "#2b8a3e", "p95": "#e67700", "p99": "#c92a2a", "rps": "#1864ab", "errors": "#c92a2a",
          "users": "#868e96", "limit": "#495057"}
# inches at 96 dpi: the page's 1100 px column less its padding
WIDTH = 10.8
TITLE_PAD = 22  # points between the axes and the title: the legend row sits in that gap
# Inches around the plotting areas of the charts drawn with _figure. Fixed, so that such a chart is drawn once:
# bbox_inches="tight" draws a figure a second time to find its extent (a third of a run report's CPU went into
# charts, ~40 % of it into that pass). Each holds the widest labels these charts carry: log-ms ticks ("500 µs") and
# an axis label on the left, a second axis's ticks and label on the right, tick labels and an axis label below,
# the legend row and the title above; GAP the next plotting area's left side. What can be longer (a legend of many
# sets, a long title) is measured before saving, and a figure it would not fit is drawn the two-pass way (_svg).
LEFT, RIGHT, RIGHT_TWIN, BOTTOM, TOP, GAP, ROW_GAP = 0.85, 0.25, 0.65, 0.5, 0.55, 1.0, 0.3


def human_ms(value: float) -> str:
    """A latency tick label: 500 µs, 2 ms, 1 s."""
    if value >= 1000:
        return f"{value / 1000:g} s"
    if value >= 1:
        return f"{value:g} ms"
    return f"{value * 1000:g} µs"


def _ms_axis(axis: Axis) -> None:
    """Log scale in human units; 1-2-5 labelled ticks, unlabelled minor ticks (labels there collide)."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: human_ms(v)))
    axis.set_minor_formatter(NullFormatter())


def _legend_above(ax: Axes, handles: Sequence[Any] | None = None, labels: Sequence[str] | None = None) -> None:
    if handles is None or labels is None:
        handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, labels, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=max(len(labels), 1), fontsize=8,
              frameon=False, borderaxespad=0.3, handlelength=1.6, columnspacing=1.4)


def _limit_line(ax: Axes, limit_ms: float) -> None:
    ax.axhline(limit_ms, color=COLORS["limit"], linestyle=":", linewidth=1.2, label=f"P95 limit {human_ms(limit_ms)}")


def _whole_seconds(series: list[TimePoint]) -> list[TimePoint]:
    # the last 1-second window ends with the last response: partial, it would draw as a throughput drop
    return series[:-1] if len(series) > 2 else series


def _gaps(values: list[float | None]) -> list[float]:
    """A second with no completed request has no percentile: NaN, which the line leaves as a gap."""
    return [math.nan if v is None else v for v in values]


def _figure(height: float, ncols: int = 1, right: float = RIGHT, nrows: int = 1) -> tuple[Figure, list[Axes]]:
    """A chart's figure with its plotting areas (side by side, or one under another with room for each one's tick
    labels) framed by the fixed margins; save it with _svg(fig, framed=True)."""
    fig, grid = plt.subplots(nrows, ncols, figsize=(WIDTH, height), squeeze=False)
    width = (WIDTH - LEFT - right - GAP * (ncols - 1)) / ncols
    rows = (height - TOP - BOTTOM - ROW_GAP * (nrows - 1)) / nrows
    fig.subplots_adjust(left=LEFT / WIDTH, right=1 - right / WIDTH, bottom=BOTTOM / height, top=1 - TOP / height,
                        wspace=GAP / width, hspace=ROW_GAP / rows)
    return fig, list(grid.flat)


def _suptitle(fig: Figure, title: str) -> None:
    """The title of side-by-side plotting areas: in the top margin, above their legend rows."""
    fig.suptitle(title, x=0.01, y=1 - 0.04 / fig.get_figheight(), ha="left", va="top", fontsize=10)


def _overflows(fig: Figure) -> bool:
    """Whether a legend or title reaches past the figure's edge: their lengths depend on the data (set and
    scenario names, how many sets), unlike the tick labels the margins are sized for."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]  # Agg's: text metrics only, no drawing
    texts: list[Any] = [t for t in fig.texts if t.get_text()]
    for ax in fig.axes:
        texts += [t for t in (ax.title, ax._left_title, ax._right_title) if t.get_text()]  # type: ignore[attr-defined]
        if ax.get_legend() is not None:
            texts.append(ax.get_legend())
    box = fig.bbox
    return any(e.x0 < box.x0 - 1 or e.x1 > box.x1 + 1 or e.y1 > box.y1 + 1
               for e in (t.get_window_extent(renderer) for t in texts))


def _svg(fig: Figure, framed: bool = False) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches=None if framed and not _overflows(fig) else "tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog: the SVG is embedded in HTML


def latency_over_time(series: list[TimePoint], warmup_s: float, title: str, limit_ms: float | None) -> str:
    fig, (ax,) = _figure(3.0, right=RIGHT_TWIN)
    points = _whole_seconds(series)
    t = [p.t for p in points]
    ax.axvspan(0, warmup_s, color="#f1f3f5", label="warm-up (excluded)")
    for key, values in (("p50", [p.p50 for p in points]), ("p95", [p.p95 for p in points]),
                        ("p99", [p.p99 for p in points])):
        ax.plot(t, _gaps(values), label=key.upper(), color=COLORS[key], linewidth=1.4)
    if limit_ms:
        _limit_line(ax, limit_ms)
    ax.set_yscale("log")
    _ms_axis(ax.yaxis)
    ax.set_xlabel("seconds since the first request (last, partial second not drawn)")
    ax.set_ylabel("latency per second")
    ax.grid(axis="y", alpha=0.3)
    users = ax.twinx()
    users.step(t, [p.users for p in points], where="post", color=COLORS["users"], linestyle="--",
               linewidth=1, label="active users (right axis)")
    users.set_ylabel("users")
    # headroom above the top user count: its line must not run along the frame (or over a limit line there)
    users.set_ylim(0, max([p.users for p in points], default=1) * 1.25 or 1)
    users.yaxis.set_major_locator(MaxNLocator(integer=True))
    users.spines["right"].set_visible(True)
    lines, labels = ax.get_legend_handles_labels()
    more, more_labels = users.get_legend_handles_labels()
    _legend_above(ax, lines + more, labels + more_labels)
    ax.set_title(title, loc="left", fontsize=10, pad=TITLE_PAD)
    return _svg(fig, framed=True)


def throughput_over_time(series: list[TimePoint], title: str) -> str:
    fig, (ax,) = _figure(2.6)
    points = _whole_seconds(series)
    t = [p.t for p in points]
    ax.plot(t, [p.rps for p in points], color=COLORS["rps"], label="completed req/s", linewidth=1.4)
    # one filled step for the errors, not one bar per second: an hour's soak would draw 3,600 bars (5 s of a
    # 10M-sample report went into them)
    ax.fill_between(t, [p.errors for p in points], step="mid", color=COLORS["errors"], label="errors/s",
                    linewidth=0)
    ax.set_xlabel("seconds since the first request (last, partial second not drawn)")
    ax.set_ylabel("per second")
    ax.set_ylim(bottom=0)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", alpha=0.3)
    _legend_above(ax)
    ax.set_title(title, loc="left", fontsize=10, pad=TITLE_PAD)
    return _svg(fig, framed=True)


def _p95_mark(ax: Axes, p95_ms: float | None, color: str, label: str) -> None:
    """A dot where the CDF crosses 95 %, labelled: the figure the thresholds judge, found on the curve."""
    if p95_ms:
        ax.plot([p95_ms], [0.95], marker="o", markersize=5, color=color, linestyle="none", label=label)


def distribution(dist: Distribution, title: str, p95_ms: float | None = None) -> str:
    fig, (hist, cdf) = _figure(2.8, ncols=2)
    edges, counts = dist.hist.edges, dist.hist.counts
    if counts:
        hist.stairs(counts, edges, fill=True, color=COLORS["rps"], alpha=0.7, label="requests per bin")
        hist.set_xscale("log")
        _ms_axis(hist.xaxis)
        if p95_ms:
            hist.axvline(p95_ms, color=COLORS["p95"], linewidth=1.2, label=f"P95 {human_ms(round(p95_ms, 1))}")
        _legend_above(hist)
    hist.set_xlabel("latency (log)")
    hist.set_ylabel("requests")
    hist.yaxis.set_major_locator(MaxNLocator(integer=True))
    if dist.cdf:
        cdf.plot([p[0] for p in dist.cdf], [p[1] for p in dist.cdf], color=COLORS["rps"], label="CDF")
        cdf.set_xscale("log")
        _ms_axis(cdf.xaxis)
        cdf.axhline(0.95, color=COLORS["limit"], linestyle=":", linewidth=1)
        _p95_mark(cdf, p95_ms, COLORS["p95"], f"P95 {human_ms(round(p95_ms or 0, 1))}")
        _legend_above(cdf)
    cdf.set_xlabel("latency (log)")
    cdf.set_ylabel("fraction of requests")
    cdf.set_ylim(0, 1.01)
    cdf.grid(alpha=0.3)
    _suptitle(fig, title)
    return _svg(fig, framed=True)


def percentile_bars(scenarios: Mapping[str, Counts], limit_ms: float | None) -> str:
    names = list(scenarios)
    fig, (ax,) = _figure(2.8)
    width = 0.25
    for i, key in enumerate(("p50", "p95", "p99")):
        values = [getattr(scenarios[n].latency_ms, key) or 0 for n in names]
        ax.bar([x + (i - 1) * width for x in range(len(names))], values, width, label=key.upper(),
               color=COLORS[key])
    if limit_ms:
        _limit_line(ax, limit_ms)
    ax.set_xticks(range(len(names)), names)
    ax.set_yscale("log")
    _ms_axis(ax.yaxis)
    ax.set_ylabel("latency (log)")
    ax.grid(axis="y", alpha=0.3)
    _legend_above(ax)
    ax.set_title("Percentiles per scenario", loc="left", fontsize=10, pad=TITLE_PAD)
    return _svg(fig, framed=True)


VARIANT_COLORS = ("#495057", "#e67700", "#1864ab", "#2b8a3e", "#862e9c", "#c92a2a")


def overlaid_cdfs(curves: Mapping[str, Sequence[Sequence[float]]], title: str, p95: Mapping[str, float | None]) -> str:
    """One latency CDF per index set on a log axis: the whole distribution moving, not just one percentile; a dot
    marks each set's P95."""
    fig, (ax,) = _figure(2.8)
    for (label, cdf), color in zip(curves.items(), VARIANT_COLORS, strict=False):
        if cdf:
            ax.plot([p[0] for p in cdf], [p[1] for p in cdf], label=label, color=color, linewidth=1.5)
            _p95_mark(ax, p95.get(label), color, f"{label} P95 {human_ms(round(p95.get(label) or 0, 1))}")
    ax.set_xscale("log")
    _ms_axis(ax.xaxis)
    ax.axhline(0.95, color=COLORS["limit"], linestyle=":", linewidth=1)
    ax.set_xlabel("latency (log)")
    ax.set_ylabel("fraction of requests")
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    _legend_above(ax)
    ax.set_title(title, loc="left", fontsize=10, pad=TITLE_PAD)
    return _svg(fig, framed=True)


def overlaid_p95(series: Mapping[str, list[TimePoint]], title: str, limit_ms: float | None) -> str:
    fig, (ax,) = _figure(2.8)
    for (label, points), color in zip(series.items(), VARIANT_COLORS, strict=False):
        whole = _whole_seconds(points)
        ax.plot([p.t for p in whole], _gaps([p.p95 for p in whole]), label=label, color=color, linewidth=1.3)
    if limit_ms:
        _limit_line(ax, limit_ms)
    ax.set_yscale("log")
    _ms_axis(ax.yaxis)
    ax.set_xlabel("seconds since the first request (last, partial second not drawn)")
    ax.set_ylabel("P95 per second (log)")
    ax.grid(axis="y", alpha=0.3)
    _legend_above(ax)
    ax.set_title(title, loc="left", fontsize=10, pad=TITLE_PAD)
    return _svg(fig, framed=True)


def size_sweep(points: dict[str, list[tuple[int, float, float]]], title: str, limit_ms: float | None = None) -> str:
    """P95 and throughput against the number of appointments, one line per index set (bookbench sweep)."""
    fig, (lat, tput) = _figure(3.0, ncols=2)
    for (label, rows), color in zip(points.items(), VARIANT_COLORS, strict=False):
        sizes = [r[0] for r in rows]
        lat.plot(sizes, [r[1] for r in rows], marker="o", label=label, color=color)
        tput.plot(sizes, [r[2] for r in rows], marker="o", label=label, color=color)
    if limit_ms:
        _limit_line(lat, limit_ms)
    for ax, ylabel in ((lat, "P95 (log)"), (tput, "throughput (req/s)")):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("appointments (log)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        _legend_above(ax)
    lat.set_yscale("log")
    _ms_axis(lat.yaxis)
    tput.set_ylim(bottom=0)
    _suptitle(fig, title)
    return _svg(fig, framed=True)


def backlog_over_time(notes: Notifications, title: str) -> str:
    """The outbox backlog after each booking burst: injected outages shaded, breaker-open spans drawn above."""
    fig, (ax,) = _figure(2.6)
    series = notes.backlog.series
    ax.plot([p[0] for p in series], [p[1] for p in series], color=COLORS["rps"], linewidth=1.4,
            label="pending notifications")
    for i, w in enumerate(w for p in ("sms", "calendar") for w in notes.faults[p]["outages"]):
        ax.axvspan(w["start_s"], w["start_s"] + w["length_s"], color="#ffe3e3",
                   label="provider outage (injected)" if i == 0 else None)
    top = max([p[1] for p in series], default=1) or 1
    for level, (provider, color) in enumerate((("sms", COLORS["p99"]), ("calendar", COLORS["p95"]))):
        for j, (a, b) in enumerate(notes.breaker[provider].spans):
            ax.plot([a, b], [top * (1.08 + 0.05 * level)] * 2, color=color, linewidth=4, solid_capstyle="butt",
                    label=f"{provider} breaker open" if j == 0 else None)
    ax.axvline(notes.window_s, color=COLORS["limit"], linestyle=":", linewidth=1.2, label="load ends")
    ax.set_xlabel("seconds since the load started")
    ax.set_ylabel("pending")
    ax.set_ylim(bottom=0, top=top * 1.2)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", alpha=0.3)
    _legend_above(ax)
    ax.set_title(title, loc="left", fontsize=10, pad=TITLE_PAD)
    return _svg(fig, framed=True)


def capacity_curves(points: dict[str, list[tuple[float, float]]], knees: dict[str, float | None],
                    limit_ms: float) -> str:
    """P95 (from the intended send time) against the offered rate, one line per index set; each set's highest
    rate within the limit marked by a dashed line of its colour."""
    fig, (ax,) = _figure(3.0)
    for (label, rows), color in zip(points.items(), VARIANT_COLORS, strict=False):
        rows = sorted(rows)
        ax.plot([r[0] for r in rows], [r[1] for r in rows], marker="o", color=color, label=label)
        knee = knees.get(label)
        if knee:
            ax.axvline(knee, color=color, linestyle="--", linewidth=1, label=f"{label}: {knee:g}/s sustained")
    _limit_line(ax, limit_ms)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}/s"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yscale("log")
    _ms_axis(ax.yaxis)
    ax.set_xlabel("offered arrival rate (requests/s, log)")
    ax.set_ylabel("P95 from the intended send time (log)")
    ax.grid(alpha=0.3)
    _legend_above(ax)
    ax.set_title("Capacity: P95 against offered load", loc="left", fontsize=10, pad=TITLE_PAD)
    return _svg(fig, framed=True)


BUDGET_COLORS = {"pool wait": "#862e9c", "lock wait": "#c92a2a", "database execution": "#1864ab",
                 "the rest": "#adb5bd"}


def latency_budget(rows: Sequence[tuple[str, float, Mapping[str, float | None]]], title: str) -> str:
    """Where a request's time goes: one stacked horizontal bar per row (name, client ms, part -> ms), each on its
    own linear scale (a P95 tens of times the median would leave the median's parts unreadable on a shared one).
    A part without a figure (None) is not drawn and its legend entry says so; the page says why."""
    bar_in = 0.35  # each bar's plotting area, inches
    fig, axes = _figure(TOP + BOTTOM + bar_in * len(rows) + ROW_GAP * (len(rows) - 1), nrows=len(rows))
    unmeasured = {part for _, _, parts in rows for part, ms in parts.items() if ms is None}
    for ax, (name, client_ms, parts) in zip(axes, rows, strict=True):
        total = sum(ms for ms in parts.values() if ms is not None) or 1.0
        left = 0.0
        for part, color in BUDGET_COLORS.items():
            ms = parts.get(part)
            if ms is None:
                continue
            ax.barh([0], [ms], left=left, height=0.6, color=color, label=part)
            if ms / total > 0.07:  # a label only where it fits inside its segment
                ax.text(left + ms / 2, 0, human_ms(float(f"{ms:.3g}")), ha="center", va="center", fontsize=8,
                        color="white" if part != "the rest" else "#212529")
            left += ms
        ax.set_yticks([0], [f"{name}\n{human_ms(float(f'{client_ms:.3g}'))}"])
        ax.set_xlim(0, max(left, client_ms) * 1.02)
        ax.set_ylim(-0.5, 0.5)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: human_ms(v) if v else "0"))
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)  # the grid behind the bars, not across them
    handles, labels = axes[0].get_legend_handles_labels()
    for part in BUDGET_COLORS:  # not measured: a legend entry drawn empty, so the gap is named, never a zero bar
        if part in unmeasured:
            handles.append(Patch(facecolor="white", edgecolor=BUDGET_COLORS[part], hatch="//"))
            labels.append(f"{part}: not measured")
    _legend_above(axes[0], handles, labels)
    axes[-1].set_xlabel("time per request (each bar on its own scale; the label under the name is the client's "
                        "latency)")
    axes[0].set_title(title, loc="left", fontsize=10, pad=TITLE_PAD)
    return _svg(fig, framed=True)
