"""Charts as inline SVG strings, drawn only from summary.json's precomputed series (no statistics here)."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                     "svg.fonttype": "none", "figure.dpi": 96})
COLORS = {"p50": "#2b8a3e", "p95": "#e67700", "p99": "#c92a2a", "rps": "#1864ab", "errors": "#c92a2a",
          "users": "#868e96"}


def _svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog: the SVG is embedded in HTML


def latency_over_time(series: list[dict[str, Any]], warmup_s: float, title: str) -> str:
    fig, ax = plt.subplots(figsize=(6.4, 2.8))
    t = [p["t"] for p in series]
    for key in ("p50", "p95", "p99"):
        ax.plot(t, [p[key] for p in series], label=key.upper(), color=COLORS[key], linewidth=1.4)
    ax.set_xlabel("seconds since the first request")
    ax.set_ylabel("latency (ms)")
    ax.axvspan(0, warmup_s, color="#f1f3f5", label="warm-up (excluded)")
    users = ax.twinx()
    users.step(t, [p["users"] for p in series], where="post", color=COLORS["users"], linestyle="--",
               linewidth=1, label="active users")
    users.set_ylabel("users")
    users.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()
    more = users.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=7, ncol=5, frameon=False)
    ax.set_title(title, loc="left", fontsize=10)
    return _svg(fig)


def throughput_over_time(series: list[dict[str, Any]], title: str) -> str:
    fig, ax = plt.subplots(figsize=(6.4, 2.4))
    t = [p["t"] for p in series]
    ax.plot(t, [p["rps"] for p in series], color=COLORS["rps"], label="completed req/s", linewidth=1.4)
    ax.bar(t, [p["errors"] for p in series], color=COLORS["errors"], label="errors/s", width=0.8)
    ax.set_xlabel("seconds since the first request")
    ax.set_ylabel("per second")
    ax.set_ylim(bottom=0)
    ax.legend(loc="upper left", fontsize=7, ncol=2, frameon=False)
    ax.set_title(title, loc="left", fontsize=10)
    return _svg(fig)


def distribution(dist: dict[str, Any], title: str) -> str:
    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(6.4, 2.4))
    edges, counts = dist["hist"]["edges"], dist["hist"]["counts"]
    if counts:
        hist.stairs(counts, edges, fill=True, color=COLORS["rps"], alpha=0.7)
        hist.set_xscale("log")
    hist.set_xlabel("latency (ms, log)")
    hist.set_ylabel("requests")
    if dist["cdf"]:
        cdf.plot([p[0] for p in dist["cdf"]], [p[1] for p in dist["cdf"]], color=COLORS["p95"])
        cdf.set_xscale("log")
    cdf.set_xlabel("latency (ms, log)")
    cdf.set_ylabel("fraction of requests")
    cdf.set_ylim(0, 1.01)
    cdf.grid(alpha=0.3)
    fig.suptitle(title, x=0.01, ha="left", fontsize=10)
    return _svg(fig)


def percentile_bars(scenarios: dict[str, dict[str, Any]], limit_ms: float | None) -> str:
    names = list(scenarios)
    fig, ax = plt.subplots(figsize=(6.4, 2.6))
    width = 0.25
    for i, key in enumerate(("p50", "p95", "p99")):
        values = [scenarios[n]["latency_ms"][key] or 0 for n in names]
        ax.bar([x + (i - 1) * width for x in range(len(names))], values, width, label=key.upper(),
               color=COLORS[key])
    if limit_ms:
        ax.axhline(limit_ms, color="#495057", linestyle=":", linewidth=1, label=f"P95 limit {limit_ms:g} ms")
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("latency (ms)")
    ax.legend(fontsize=7, ncol=4, frameon=False, loc="upper left")
    ax.set_title("Percentiles per scenario", loc="left", fontsize=10)
    return _svg(fig)


VARIANT_COLORS = ("#495057", "#e67700", "#1864ab", "#2b8a3e", "#862e9c", "#c92a2a")


def overlaid_cdfs(curves: dict[str, list[list[float]]], title: str) -> str:
    """One latency CDF per index set on a log axis: the whole distribution moving, not just one percentile."""
    fig, ax = plt.subplots(figsize=(6.4, 2.6))
    for (label, cdf), color in zip(curves.items(), VARIANT_COLORS, strict=False):
        if cdf:
            ax.plot([p[0] for p in cdf], [p[1] for p in cdf], label=label, color=color, linewidth=1.5)
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log)")
    ax.set_ylabel("fraction of requests")
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    ax.set_title(title, loc="left", fontsize=10)
    return _svg(fig)


def overlaid_p95(series: dict[str, list[dict[str, Any]]], title: str) -> str:
    fig, ax = plt.subplots(figsize=(6.4, 2.4))
    for (label, points), color in zip(series.items(), VARIANT_COLORS, strict=False):
        ax.plot([p["t"] for p in points], [p["p95"] for p in points], label=label, color=color, linewidth=1.3)
    ax.set_yscale("log")
    ax.set_xlabel("seconds since the first request")
    ax.set_ylabel("P95 per second (ms, log)")
    ax.legend(fontsize=7, frameon=False, loc="upper right")
    ax.set_title(title, loc="left", fontsize=10)
    return _svg(fig)


def size_sweep(points: dict[str, list[tuple[int, float, float]]], title: str) -> str:
    """P95 and throughput against the number of appointments, one line per index set (bookbench sweep)."""
    fig, (lat, tput) = plt.subplots(1, 2, figsize=(7.2, 2.8))
    for (label, rows), color in zip(points.items(), VARIANT_COLORS, strict=False):
        sizes = [r[0] for r in rows]
        lat.plot(sizes, [r[1] for r in rows], marker="o", label=label, color=color)
        tput.plot(sizes, [r[2] for r in rows], marker="o", label=label, color=color)
    for ax, ylabel in ((lat, "P95 (ms, log)"), (tput, "throughput (req/s)")):
        ax.set_xscale("log")
        ax.set_xlabel("appointments (log)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    lat.set_yscale("log")
    tput.set_ylim(bottom=0)
    lat.legend(fontsize=7, frameon=False)
    fig.suptitle(title, x=0.01, ha="left", fontsize=10)
    return _svg(fig)
