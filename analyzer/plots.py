"""Figures of a records DataFrame, one function per question (SPEC §5).

Each function takes the frame of :func:`analyzer.read_pcap` and returns a matplotlib
:class:`~matplotlib.figure.Figure` built without pyplot: nothing is shown, no global state
changes, any backend (Agg in tests and the report) works. Every figure has a title, axis
labels with units, and a legend when it has more than one series. Colours come from one
mapping, :data:`COLORS`: a failure category has the same colour in every figure.

Labels taken from a capture (server names) are made inert for matplotlib's math text
(``$`` is escaped) and shortened. The numbers come from :mod:`analyzer.aggregate`; this
module only draws.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from analyzer import aggregate as agg
from analyzer.record import FAILURES

FAILURE_COLORS: dict[str, str] = {
    # negotiation: blues and violets
    "version_mismatch": "#0067a5",
    "cipher_mismatch": "#86b6e6",
    "alpn_mismatch": "#604e97",
    "protocol_error": "#a883c9",
    "other_alert": "#e68fac",
    # certificates: reds, oranges, yellows
    "certificate_expired": "#be0032",
    "certificate_untrusted": "#f38400",
    "certificate_invalid": "#f6c400",
    "sni_mismatch": "#b3446c",
    "client_certificate_required": "#f99379",
    # proxies and plaintext
    "proxy_error": "#c2b280",
    "not_tls": "#8db600",
    # network: browns, greys, teals
    "tcp_refused": "#882d17",
    "tcp_no_answer": "#654522",
    "udp_refused": "#e25822",
    "udp_no_answer": "#c8a2c8",
    "reset_during_handshake": "#7f7f7f",
    "no_server_response": "#00a6a6",
    "handshake_aborted": "#2b3d26",
}
"""One colour per failure category (SPEC §4), chosen for contrast and grouped by kind."""

OUTCOME_COLORS: dict[str, str] = {
    "established": "#2e9e4f",
    "failed": "#3c3c3c",
    "incomplete": "#d4d4d4",
    "not_tls": FAILURE_COLORS["not_tls"],
}
"""Outcomes (SPEC §3); ``not_tls`` shares its failure category's colour."""

COLORS: dict[str, str] = {**FAILURE_COLORS, **OUTCOME_COLORS, "continued": "#8fa3b8"}
"""The one colour mapping every figure uses (failure categories, outcomes, and the
funnel's ``continued`` bar)."""

_WIDE = (10.0, 4.8)
_LABEL_MAX = 48


def color(name: str) -> str:
    """The colour of a failure category or outcome (grey for anything unknown)."""
    return COLORS.get(name, "#999999")


def plain(text: object, limit: int = _LABEL_MAX) -> str:
    """A label from capture data, inert for math text and at most ``limit`` characters."""
    s = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    if len(s) > limit:
        s = s[: limit - 1] + "…"
    return s.replace("$", r"\$")


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _figure(size: tuple[float, float] = _WIDE) -> Figure:
    return Figure(figsize=size, dpi=100, layout="constrained")


def _empty(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#555")
    ax.set_xticks([])
    ax.set_yticks([])


def _legend_right(ax: Axes, handles: Sequence[Patch], title: str) -> None:
    ax.legend(
        handles=list(handles),
        title=title,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
        fontsize="small",
        title_fontsize="small",
    )


def _category_patches(categories: Sequence[str]) -> list[Patch]:
    return [Patch(facecolor=color(c), label=c) for c in categories]


def _bin_label(freq: str) -> str:
    td = pd.Timedelta(freq)
    seconds = td.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:g} ms"
    if seconds < 60:
        return f"{seconds:g} s"
    if seconds < 3600:
        return f"{seconds / 60:g} min"
    if seconds < 86400:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 86400:g} days" if seconds > 86400 else "day"


def failures_over_time(df: pd.DataFrame, freq: str | None = None) -> Figure:
    """Two panels over the capture's span: connections per bin by outcome (established,
    failed, other), then failures per bin stacked by category. ``freq`` defaults to
    :func:`analyzer.aggregate.time_bin`."""
    freq = freq or agg.time_bin(df)
    unit = _bin_label(freq)
    fig = _figure((10.0, 6.0))
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[1.0, 1.4])
    fig.suptitle(f"Handshakes over time (bins of {unit})", fontweight="bold")
    top.set_title("Connections by outcome", fontsize="medium", loc="left")
    bottom.set_title("Failed handshakes by category", fontsize="medium", loc="left")
    top.set_ylabel(f"connections per {unit}")
    bottom.set_ylabel(f"failures per {unit}")
    bottom.set_xlabel("time (UTC)")
    if df.empty:
        _empty(top, "no connections")
        _empty(bottom, "no connections")
        return fig
    counts = agg.over_time(df, freq)
    times = pd.DatetimeIndex(counts["time"]).tz_convert("UTC").tz_localize(None)
    width = pd.Timedelta(freq) / pd.Timedelta(days=1)
    other = counts["connections"] - counts["established"] - counts["failed"]
    base = np.zeros(len(counts))
    series = [
        ("established", counts["established"].to_numpy(), color("established")),
        ("failed", counts["failed"].to_numpy(), color("failed")),
        ("incomplete or not blamed", other.to_numpy(), color("incomplete")),
    ]
    handles = []
    for label, values, colour in series:
        if not values.any():
            continue
        top.bar(
            times,
            values,
            width=width,
            bottom=base,
            align="edge",
            color=colour,
            label=label,
            edgecolor="white",
            linewidth=0.5,
        )
        base = base + values
        handles.append(Patch(facecolor=colour, label=label))
    _legend_right(top, handles, "outcome")
    long = agg.failures_over_time(df, freq)
    if long.empty:
        _empty(bottom, "no failed handshakes")
    else:
        wide = long.pivot(index="time", columns="failure", values="count").fillna(0)
        wide = wide.reindex(counts["time"], fill_value=0)
        cats = [c for c in FAILURES if c in wide.columns]
        base = np.zeros(len(wide))
        for cat in cats:
            values = wide[cat].to_numpy(dtype=float)
            bottom.bar(
                times,
                values,
                width=width,
                bottom=base,
                align="edge",
                color=color(cat),
                label=cat,
                edgecolor="white",
                linewidth=0.5,
            )
            base = base + values
        _legend_right(bottom, _category_patches(cats), "failure category")
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    for ax in (top, bottom):
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
    return fig


def top_failing_servers(df: pd.DataFrame, top: int = 10) -> Figure:
    """The servers (IP:port and SNI) with the most failed handshakes, each bar stacked by
    failure category and labelled with ``failed of connections (rate)``."""
    worst = agg.worst_servers(df, top=top)
    fig = _figure((10.0, 1.3 + 0.45 * max(len(worst), 4)))
    ax = fig.subplots()
    ax.set_title("Servers with the most failed handshakes", fontweight="bold")
    ax.set_xlabel("failed handshakes (count)")
    ax.set_ylabel("server IP:port (SNI)")
    if worst.empty:
        _empty(ax, "no failed handshakes")
        return fig
    bad = df[agg.failed_mask(df)]
    keys = pd.DataFrame(
        {
            "server": agg.server_address(bad),
            "sni": agg.key_series(bad, "sni"),
            "failure": bad["failure"].astype("object"),
        }
    )
    counts = keys.groupby(["server", "sni", "failure"]).size()
    cats = [c for c in FAILURES if c in set(keys["failure"])]
    labels = [
        plain(s) + ("" if n == agg.NONE_LABEL else f"  ({plain(n, 40)})")
        for s, n in zip(worst["server"], worst["sni"], strict=True)
    ]
    y = np.arange(len(worst))[::-1]
    left = np.zeros(len(worst))
    for cat in cats:
        pairs = zip(worst["server"], worst["sni"], strict=True)
        values = np.array([counts.get((s, n, cat), 0) for s, n in pairs], dtype=float)
        if values.any():
            ax.barh(y, values, left=left, color=color(cat), label=cat, height=0.7)
            left += values
    for yi, row in zip(y, _rows(worst), strict=True):
        ax.text(
            float(row["failed"]) + 0.1,
            yi,
            f" {row['failed']} of {row['connections']} ({row['failure_rate']:.0%})",
            va="center",
            fontsize="small",
        )
    ax.set_yticks(y, labels)
    ax.set_xlim(0, float(worst["failed"].max()) * 1.4 + 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    _legend_right(ax, _category_patches(cats), "failure category")
    return fig


def version_outcome_heatmap(df: pd.DataFrame) -> Figure:
    """Negotiated TLS version × outcome, counts in each cell."""
    fig = _figure((7.5, 4.0))
    ax = fig.subplots()
    ax.set_title("Negotiated TLS version × outcome", fontweight="bold")
    ax.set_xlabel("outcome")
    ax.set_ylabel("negotiated version")
    matrix = agg.version_outcome_matrix(df)
    if matrix.empty:
        _empty(ax, "no connections")
        return fig
    values = matrix.to_numpy(dtype=float)
    image = ax.imshow(values, cmap="Blues", aspect="auto", vmin=0)
    rows = ["not negotiated" if v == agg.NONE_LABEL else plain(v) for v in matrix.index]
    ax.set_xticks(range(len(matrix.columns)), [str(c) for c in matrix.columns])
    ax.set_yticks(range(len(rows)), rows)
    peak = values.max() or 1.0
    for (i, j), v in np.ndenumerate(values):
        ax.text(
            j,
            i,
            f"{int(v)}",
            ha="center",
            va="center",
            color="white" if v > peak * 0.6 else ("#9a9a9a" if v == 0 else "black"),
            fontsize="medium",
        )
    bar = fig.colorbar(image, ax=ax, label="connections (count)")
    bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def handshake_funnel(df: pd.DataFrame) -> Figure:
    """How far handshakes got: one bar per stage, as long as the number of connections that
    reached it; the part that stopped there is split into failures (by category),
    established connections and connections that were cut off or not blamed."""
    fig = _figure((10.0, 4.8))
    ax = fig.subplots()
    ax.set_title("How far handshakes got", fontweight="bold")
    ax.set_xlabel("connections (count)")
    ax.set_ylabel("handshake stage")
    if df.empty:
        _empty(ax, "no connections")
        return fig
    funnel = agg.stage_funnel(df)
    stage = df["stage"].astype("object")
    failure = df["failure"].astype("object")
    outcome = df["outcome"].astype("object")
    stages = list(funnel["stage"])
    y = np.arange(len(stages))[::-1]
    continued = np.append(funnel["reached"].to_numpy()[1:], 0).astype(float)
    ax.barh(y, continued, color=color("continued"), height=0.7)
    left = continued.copy()
    cats = [c for c in FAILURES if c in set(failure.dropna())]
    for cat in cats:
        values = np.array([((stage == s) & (failure == cat)).sum() for s in stages], float)
        ax.barh(y, values, left=left, color=color(cat), height=0.7)
        left += values
    not_failed = failure.isna()
    ok = not_failed & (outcome == "established")
    est = np.array([((stage == s) & ok).sum() for s in stages])
    ax.barh(y, est.astype(float), left=left, color=color("established"), height=0.7)
    left += est
    other = not_failed & (outcome != "established")
    rest = np.array([((stage == s) & other).sum() for s in stages])
    ax.barh(y, rest.astype(float), left=left, color=color("incomplete"), height=0.7)
    total = len(df)
    for yi, row in zip(y, _rows(funnel), strict=True):
        ax.text(
            float(row["reached"]) + total * 0.01,
            yi,
            f"{row['reached']} ({row['share']:.0%})",
            va="center",
            fontsize="small",
        )
    ax.set_yticks(y, [s.replace("_", " ") for s in stages])
    ax.set_xlim(0, total * 1.15)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    handles = [Patch(facecolor=color("continued"), label="went further")]
    handles += _category_patches(cats)
    if est.any():
        handles.append(Patch(facecolor=color("established"), label="established"))
    if rest.any():
        handles.append(Patch(facecolor=color("incomplete"), label="incomplete or not blamed"))
    _legend_right(ax, handles, "at this stage")
    return fig


def handshake_time_distribution(df: pd.DataFrame) -> Figure:
    """Histogram of handshake durations (ClientHello → established or failure), log scale,
    successes and failures side by side, with their medians."""
    fig = _figure((9.0, 4.5))
    ax = fig.subplots()
    ax.set_title("Handshake time: established vs failed", fontweight="bold")
    ax.set_xlabel("handshake time (ms, log scale)")
    ax.set_ylabel("connections (count)")
    times = agg.handshake_times(df)
    times = times[times["handshake_ms"] > 0]
    if times.empty:
        _empty(ax, "no handshake times")
        return fig
    lo = max(float(times["handshake_ms"].min()), 1e-3)
    hi = max(float(times["handshake_ms"].max()), lo * 10)
    bins = np.geomspace(lo / 1.2, hi * 1.2, 30)
    groups = [g for g in ("established", "failed") if (times["group"] == g).any()]
    data = [times.loc[times["group"] == g, "handshake_ms"].to_numpy() for g in groups]
    ax.hist(
        data,
        bins=bins.tolist(),
        color=[color(g) for g in groups],
        label=[f"{g} ({len(d)})" for g, d in zip(groups, data, strict=True)],
        histtype="bar",
        stacked=False,
    )
    for g, d in zip(groups, data, strict=True):
        median = float(np.median(d))
        ax.axvline(median, color=color(g), linestyle="--", label=f"median {g}: {median:.1f} ms")
    ax.set_xscale("log")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.legend(frameon=False, fontsize="small")
    return fig


def failure_categories(df: pd.DataFrame) -> Figure:
    """Failed handshakes per category, most frequent first, with share of all failures."""
    cats = agg.failure_categories(df)
    fig = _figure((9.0, max(2.8, 1.2 + 0.38 * len(cats))))
    ax = fig.subplots()
    ax.set_title("Failure categories", fontweight="bold")
    ax.set_xlabel("failed handshakes (count)")
    ax.set_ylabel("failure category")
    if cats.empty:
        _empty(ax, "no failed handshakes")
        return fig
    y = np.arange(len(cats))[::-1]
    names = [str(c) for c in cats["failure"]]
    ax.barh(y, cats["count"].to_numpy(dtype=float), color=[color(c) for c in names], height=0.7)
    for yi, row in zip(y, _rows(cats), strict=True):
        ax.text(
            float(row["count"]) + 0.1,
            yi,
            f" {row['count']} ({row['share']:.0%}), ended by {row['failure_side']}",
            va="center",
            fontsize="small",
        )
    ax.set_yticks(y, names)
    ax.set_xlim(0, float(cats["count"].max()) * 1.3 + 1)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    return fig


FIGURES = {
    "failures_over_time": failures_over_time,
    "failure_categories": failure_categories,
    "top_failing_servers": top_failing_servers,
    "handshake_funnel": handshake_funnel,
    "version_outcome_heatmap": version_outcome_heatmap,
    "handshake_time_distribution": handshake_time_distribution,
}
"""Every figure, by name, in the order the report shows them."""


def all_figures(df: pd.DataFrame) -> dict[str, Figure]:
    """Every figure of :data:`FIGURES` for one frame."""
    return {name: make(df) for name, make in FIGURES.items()}
