"""Figures of a records DataFrame, one function per question (SPEC §5).

Each function takes the frame of :func:`analyzer.read_pcap` and returns a matplotlib
:class:`~matplotlib.figure.Figure` built without pyplot: nothing is shown, no global state
changes, any backend (Agg in tests and the report) works. Every figure has a title, axis
labels with units, and a legend when it has more than one series (:func:`legend_entries`
reads one back). Colours come from one mapping, :data:`COLORS`: a failure category has the
same colour in every figure.

Labels taken from a capture (server names) are made inert for matplotlib's math text
(``$`` is escaped) and shortened. The numbers come from :mod:`analyzer.aggregate`, but for
the time figure's bins, counted here per busy period; this module only draws.

Time figures follow the capture's busy periods (:func:`busy_periods`): captures taken days
apart, or traffic that stops for long stretches, get one panel per busy period on a
broken time axis, all at one bin, instead of one bar per period in a bin as wide as the
whole span.

Drawing is what the report spends most of its time on, so the figures are cheap to draw:
the bars of one series (or of one chart) are one collection, not one patch each; legends
are a few texts and two collections, not matplotlib's packed legend; the axes are placed
with margins measured from their own labels (:func:`_place`) instead of a layout engine,
which lays out every text of the figure twice more per draw; count axes have about six
ticks; and no text needs math rendering (log-axis ticks are plain numbers).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import to_hex
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import text_to_path
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter
from matplotlib.transforms import Affine2D, Affine2DBase, ScaledTranslation

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
_BREAK_SHARE = 0.25
"""An empty stretch breaks the time axis when it is longer than this share of the busy
time shown (it would take more than 10 of the 40 bins a time figure aims at)."""
_BREAK_MIN_S = 60.0
"""...and longer than this: a pause of a few seconds never breaks the axis."""
_MAX_PANELS = 6
"""Busy periods shown apart at most; the shortest empty stretches are kept beyond that."""
_MIN_PANEL_BINS = 6
"""Narrowest panel of a broken time axis, in bins (a one-bin period stays readable)."""
_PT = 1.0 / 72.0
"""Inches per point."""
_PAD = 0.1
"""Inches of white space at each edge of a figure."""


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
    return Figure(figsize=size, dpi=100)


# --- placing axes without a layout engine ----------------------------------------------


def _points(size: str | float) -> float:
    """A font size (``"small"``, ``10``) in points, as matplotlib resolves it now."""
    return float(FontProperties(size=size).get_size_in_points())


@lru_cache(maxsize=4096)
def _text_width(text: str, points: float) -> float:
    """Width in inches of one line of ``text`` in the default font at ``points``."""
    width, _, _ = text_to_path.get_text_width_height_descent(
        text, FontProperties(size=points), ismath=False
    )
    return float(width) * _PT * 1.04  # hinting makes drawn text a little wider


def _widest(texts: Iterable[str], size: str | float = "medium") -> float:
    points = _points(size)
    return max((_text_width(t, points) for t in texts), default=0.0)


def _line(size: str | float = "medium") -> float:
    """Height in inches of one line of text."""
    return _points(size) * 1.3 * _PT


def _count_labels(top: float) -> list[str]:
    """The widest labels a count axis up to ``top`` may show."""
    return [str(int(top * 1.1) + 1)]


def _left_margin(ytick_labels: Iterable[str]) -> float:
    """Room for the y tick labels, the ticks and the y label."""
    tick = (3.5 + 3.5) * _PT  # tick length and pad
    return _PAD + _line() + 4 * _PT + tick + _widest(ytick_labels)


def _bottom_margin(rows: int = 1) -> float:
    """Room for the x tick labels (``rows`` lines, e.g. a date offset) and the x label."""
    return _PAD + (3.5 + 3.5) * _PT + rows * _line() + 4 * _PT + _line()


def _top_margin(title: str | float = "large") -> float:
    return _PAD + _line(title) + 6 * _PT


def _legend_width(labels: Iterable[str], title: str) -> float:
    """Width of a legend of :func:`_legend` and the gap before it."""
    points = _points("small")
    text = max(_widest(labels, "small"), _widest([title], "small"))
    return text + 4.6 * points * _PT + 0.15


def _place(
    fig: Figure,
    *,
    left: float,
    right: float,
    top: float,
    bottom: float,
    wspace: float = 0.0,
    hspace: float = 0.0,
    columns: int = 1,
    rows: int = 1,
) -> None:
    """Put the figure's grid of axes inside margins given in inches (``wspace`` and
    ``hspace``: inches between columns and rows)."""
    w, h = fig.get_size_inches()
    right = min(right, w * 0.6)  # very long labels are cut, the axes keep some room
    left = min(left, w * 0.45)
    inner_w = max(w - left - right - wspace * (columns - 1), 0.5)
    inner_h = max(h - top - bottom - hspace * (rows - 1), 0.5)
    fig.subplots_adjust(
        left=left / w,
        right=1.0 - right / w,
        top=1.0 - top / h,
        bottom=bottom / h,
        wspace=wspace / (inner_w / columns),
        hspace=hspace / (inner_h / rows),
    )


def _place_one(fig: Figure, ytick_labels: Iterable[str] = (), *, right: float = _PAD) -> None:
    """:func:`_place` for a figure of one axes (and a colour bar or legend at its right)."""
    _place(
        fig,
        left=_left_margin(ytick_labels),
        right=right,
        top=_top_margin(),
        bottom=_bottom_margin(),
    )


def _counts() -> MaxNLocator:
    """Ticks of a count axis: whole numbers, about six of them (each tick is several
    artists to draw)."""
    return MaxNLocator(nbins=6, integer=True)


def _empty(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#555")
    ax.set_xticks([])
    ax.set_yticks([])


@dataclass(frozen=True, slots=True)
class Key:
    """One legend entry: a label and its colour, shown as a box (a bar series) or a
    dashed line (a marker line)."""

    label: str
    colour: str
    dashed: bool = False


LEGEND_GID = "legend:"
"""``gid`` prefix of a legend's label texts, followed by the entry's colour
(:func:`legend_entries` reads them back)."""


def _keys(categories: Sequence[str]) -> list[Key]:
    return [Key(c, color(c)) for c in categories]


def _legend(ax: Axes, keys: Sequence[Key], title: str | None, *, inside: bool = False) -> None:
    """A legend at the right of the axes (or ``inside`` its upper right corner): a title,
    a box or dashed line per entry, its label. Drawn as plain texts and two collections,
    placed in points from the axes' corner: matplotlib's own legend packs every entry in
    boxes of its own and costs several times more to draw than the bars it explains."""
    fig = ax.get_figure()
    assert isinstance(fig, Figure)
    size = _points("small")
    row = size * 1.5
    handle = size * 2.0
    gap = size * 0.8
    width = handle + gap + _widest([k.label for k in keys], "small") * 72
    x0 = size * 0.6 if not inside else -width - size * 0.6
    corner = ax.transAxes
    assert isinstance(corner, Affine2DBase)
    points = Affine2D().scale(1 / 72.0) + fig.dpi_scale_trans + ScaledTranslation(1, 1, corner)
    text: dict[str, Any] = {"transform": points, "fontsize": "small", "clip_on": False}
    y = -size * 0.4
    if title:
        ax.text(x0 + width / 2, y, title, ha="center", va="top", gid=LEGEND_GID, **text)
        y -= row
    boxes, lines = [], []
    for i, key in enumerate(keys):
        mid = y - i * row - row / 2
        if key.dashed:
            lines.append([(x0, mid), (x0 + handle, mid)])
        else:
            lo, hi = mid - size * 0.35, mid + size * 0.35
            boxes.append([(x0, lo), (x0, hi), (x0 + handle, hi), (x0 + handle, lo)])
        label = ax.text(x0 + handle + gap, mid, key.label, va="center", **text)
        label.set_gid(LEGEND_GID + to_hex(key.colour))
    faces = [k.colour for k in keys if not k.dashed]
    if boxes:
        ax.add_collection(
            PolyCollection(
                boxes, facecolors=faces, linewidths=0.0, transform=points, gid=LEGEND_GID
            ),
            autolim=False,
        ).set_clip_on(False)
    if lines:
        colours = [k.colour for k in keys if k.dashed]
        ax.add_collection(
            LineCollection(
                lines, colors=colours, linestyles="--", transform=points, gid=LEGEND_GID
            ),
            autolim=False,
        ).set_clip_on(False)


def legend_entries(ax: Axes) -> dict[str, str]:
    """The labels of the axes' legend (:func:`_legend`) and their colours (``#rrggbb``)."""
    return {
        t.get_text(): str(t.get_gid())[len(LEGEND_GID) :]
        for t in ax.texts
        if str(t.get_gid()).startswith(LEGEND_GID + "#")
    }


def _boxes(
    at: np.ndarray,
    start: np.ndarray,
    length: np.ndarray,
    thickness: float | np.ndarray,
    *,
    horizontal: bool,
) -> np.ndarray:
    """Rectangles as polygon vertices, shape (n, 4, 2): bars centred on ``at`` with the
    given ``thickness`` (horizontal) or starting at ``at`` (vertical, ``thickness`` wide),
    from ``start`` to ``start + length``."""
    n = len(at)
    a = np.asarray(at, dtype=float)
    s = np.asarray(start, dtype=float)
    e = s + np.asarray(length, dtype=float)
    t = np.broadcast_to(np.asarray(thickness, dtype=float), (n,))
    lo, hi = (a - t / 2, a + t / 2) if horizontal else (a, a + t)
    if horizontal:
        xs = np.stack([s, s, e, e], axis=1)
        ys = np.stack([lo, hi, hi, lo], axis=1)
    else:
        xs = np.stack([lo, lo, hi, hi], axis=1)
        ys = np.stack([s, e, e, s], axis=1)
    return np.stack([xs, ys], axis=2)


def _bars(
    ax: Axes,
    verts: list[np.ndarray],
    colours: list[str],
    *,
    label: str | None = None,
    edge: str = "face",
) -> PolyCollection:
    """Rectangles (from :func:`_boxes`, one colour per array) drawn as one collection."""
    polys = np.concatenate(verts) if verts else np.zeros((0, 4, 2))
    faces = [c for v, c in zip(verts, colours, strict=True) for _ in range(len(v))]
    coll = PolyCollection(
        list(polys),
        facecolors=faces or "none",
        edgecolors="white" if edge == "white" else faces or "none",
        linewidths=0.5 if edge == "white" else 0.0,
        label=label,
        closed=True,
    )
    ax.add_collection(coll, autolim=True)
    return coll


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


# --- time figures ----------------------------------------------------------------------


def busy_periods(seconds: Sequence[float] | np.ndarray) -> list[tuple[float, float]]:
    """The busy periods of a set of times (epoch seconds): ``(first, last)`` of each run of
    times not interrupted by a long empty stretch, in time order.

    The axis breaks at the ``k`` longest empty stretches, for the largest ``k`` below
    ``_MAX_PANELS`` where each of them is longer than ``_BREAK_MIN_S`` and than
    ``_BREAK_SHARE`` of the busy time left once they are cut out. More busy periods than
    that (daily bursts over weeks) stay on one axis."""
    ts = np.sort(np.asarray(seconds, dtype=float))
    if len(ts) == 0:
        return []
    gaps = np.diff(ts)
    order = np.argsort(gaps, kind="stable")[::-1][: _MAX_PANELS - 1]
    span = float(ts[-1] - ts[0])
    cut = 0
    for k in range(1, len(order) + 1):
        shortest = float(gaps[order[k - 1]])
        busy = span - float(gaps[order[:k]].sum())
        if shortest > _BREAK_MIN_S and shortest > _BREAK_SHARE * busy:
            cut = k
    bounds = [0, *sorted(int(i) + 1 for i in order[:cut]), len(ts)]
    return [(float(ts[a]), float(ts[b - 1])) for a, b in itertools.pairwise(bounds)]


def _seconds(times: pd.Series) -> np.ndarray:
    """Epoch seconds of a datetime column."""
    stamps = pd.DatetimeIndex(times)
    if stamps.tz is not None:
        stamps = stamps.tz_convert("UTC").tz_localize(None)
    return np.asarray((stamps - pd.Timestamp(0)) / pd.Timedelta(seconds=1), dtype=float)


def _periods_bin(periods: Sequence[tuple[float, float]]) -> str:
    """:func:`analyzer.aggregate.time_bin` over the busy time of every period together."""
    busy = sum(b - a for a, b in periods)
    span = pd.DataFrame({"ts": pd.to_datetime([0.0, busy], unit="s", utc=True)})
    return agg.time_bin(span)


def failures_over_time(df: pd.DataFrame, freq: str | None = None) -> Figure:
    """Two rows over the capture's busy periods: connections per bin by outcome
    (established, failed, other), then failures per bin stacked by category. Each busy
    period (:func:`busy_periods`) is one column, all at one bin; ``freq`` defaults to
    :func:`analyzer.aggregate.time_bin` over the busy time."""
    seconds = _seconds(df["ts"]) if not df.empty else np.zeros(0)
    periods = busy_periods(seconds) or [(0.0, 0.0)]
    freq = freq or (agg.time_bin(df) if len(periods) == 1 else _periods_bin(periods))
    unit = _bin_label(freq)
    step = pd.Timedelta(freq).total_seconds()
    edges = [_panel_edges(a, b, step) for a, b in periods]
    widths = [round((b - a) / step) for a, b in edges]
    fig = _figure((10.0, 6.0))
    grid = fig.subplots(
        2,
        len(periods),
        sharex="col",
        sharey="row",
        squeeze=False,
        gridspec_kw={"height_ratios": [1.0, 1.4], "width_ratios": widths},
    )
    tops, bottoms = list(grid[0]), list(grid[1])
    top, bottom = tops[0], bottoms[0]
    fig.suptitle(f"Handshakes over time (bins of {unit})", fontweight="bold")
    top.set_title("Connections by outcome", fontsize="medium", loc="left", y=1.0)
    bottom.set_title("Failed handshakes by category", fontsize="medium", loc="left", y=1.0)
    top.set_ylabel(f"connections per {unit}")
    bottom.set_ylabel(f"failures per {unit}")
    for ax in bottoms:
        ax.set_xlabel("time (UTC)" if ax is bottom else "")
    handles: list[Key] = []
    cats: list[str] = []
    peak = [0.0, 0.0]
    if df.empty:
        _empty(top, "no connections")
        _empty(bottom, "no connections")
    else:
        outcome_series = [
            ("established", color("established")),
            ("failed", color("failed")),
            ("incomplete or not blamed", color("incomplete")),
        ]
        columns = [_period_counts(df, seconds, e, step) for e in edges]
        seen = [any(c[0][k].any() for c in columns) for k in range(3)]
        cats = [c for c in FAILURES if any(c in col[1] for col in columns)]
        days = step / 86400.0
        for (counts, failures, x0), t_ax, b_ax in zip(columns, tops, bottoms, strict=True):
            outcomes = [
                (label, values, colour)
                for (label, colour), values, shown in zip(outcome_series, counts, seen, strict=True)
                if shown
            ]
            by_category = [(c, failures[c], color(c)) for c in cats if c in failures]
            peak[0] = max(peak[0], _stack(t_ax, x0, days, outcomes))
            peak[1] = max(peak[1], _stack(b_ax, x0, days, by_category))
        handles = [
            Key(label, colour)
            for (label, colour), shown in zip(outcome_series, seen, strict=True)
            if shown
        ]
        _legend(tops[-1], handles, "outcome")
        if not cats:
            for ax in bottoms:
                _empty(ax, "no failed handshakes")
        else:
            _legend(bottoms[-1], _keys(cats), "failure category")
        for (a, b), t_ax, b_ax, width in zip(edges, tops, bottoms, widths, strict=True):
            t_ax.set_xlim(float(_dates(a)), float(_dates(b)))
            t_ax.set_ylim(0, max(peak[0], 1.0) * 1.05)
            b_ax.set_ylim(0, max(peak[1], 1.0) * 1.05)
            locator = AutoDateLocator(  # type: ignore[no-untyped-call]
                minticks=2, maxticks=max(3, min(10, width // 3))
            )
            b_ax.xaxis.set_major_locator(locator)
            b_ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
            for ax in (t_ax, b_ax):
                ax.yaxis.set_major_locator(_counts())
                ax.grid(axis="y", alpha=0.3)
                ax.set_axisbelow(True)
    if len(periods) > 1:
        for column, (t_ax, b_ax) in enumerate(zip(tops, bottoms, strict=True)):
            for ax in (t_ax, b_ax):
                ax.spines["left"].set_visible(column == 0)
                ax.spines["right"].set_visible(column == len(periods) - 1)
                if column:
                    ax.tick_params(axis="y", left=False)
    legend = _legend_width(
        [h.label for h in handles] + cats, "failure category" if cats else "outcome"
    )
    _place(
        fig,
        left=_left_margin(_count_labels(max(peak))),
        right=legend,
        top=_top_margin("large") + _line("medium") + 6 * _PT,
        bottom=_bottom_margin(rows=2),
        hspace=_line("medium") + 12 * _PT,
        wspace=0.3,
        columns=len(periods),
        rows=2,
    )
    return fig


def _panel_edges(first: float, last: float, step: float) -> tuple[float, float]:
    """The time span (epoch seconds) of a panel: the bins from ``first`` to ``last``,
    widened evenly to at least ``_MIN_PANEL_BINS``."""
    start = math.floor(first / step)
    bins = math.floor(last / step) + 1 - start
    extra = max(_MIN_PANEL_BINS - bins, 0)
    start -= extra // 2
    return start * step, (start + bins + extra) * step


def _dates(seconds: np.ndarray | float) -> np.ndarray:
    """Epoch seconds as matplotlib dates (days since matplotlib's epoch)."""
    epoch = float(date2num(np.datetime64(0, "s")))  # type: ignore[no-untyped-call]
    days: np.ndarray = np.asarray(seconds, dtype=float) / 86400.0 + epoch
    return days


def _period_counts(
    df: pd.DataFrame, seconds: np.ndarray, edges: tuple[float, float], step: float
) -> tuple[list[np.ndarray], dict[str, np.ndarray], np.ndarray]:
    """Per bin of one panel (``edges`` in epoch seconds, bins of ``step`` seconds from
    the epoch, as :func:`analyzer.aggregate.over_time` makes them): connections by
    outcome (established, failed, other), failures by category, and the bins' left edges
    (matplotlib dates)."""
    first, last = edges
    bins = round((last - first) / step)
    inside = (seconds >= first) & (seconds < last)
    index = np.floor((seconds[inside] - first) / step).astype(int).clip(0, bins - 1)
    outcome = df["outcome"].astype("object").to_numpy()[inside]
    failure = df["failure"].astype("object").to_numpy()[inside]
    failed = ~pd.isna(failure)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(index[mask], minlength=bins).astype(float)

    everything = np.bincount(index, minlength=bins).astype(float)
    series = [count(outcome == "established"), count(failed)]
    series.append(everything - series[0] - series[1])
    failures = {str(c): count(failure == c) for c in dict.fromkeys(failure[failed])}
    return series, failures, _dates(first + step * np.arange(bins))


def _stack(
    ax: Axes, x0: np.ndarray, width: float, series: Sequence[tuple[str, np.ndarray, str]]
) -> float:
    """Stacked bars, one collection per series (label, values, colour), bins from ``x0``
    ``width`` wide; returns the highest stack."""
    base = np.zeros(len(x0))
    for label, values, colour in series:
        shown = values > 0
        verts = _boxes(x0[shown], base[shown], values[shown], width, horizontal=False)
        _bars(ax, [verts], [colour], label=label, edge="white")
        base = base + values
    return float(base.max()) if len(base) else 0.0


# --- bars by server, stage and category -------------------------------------------------


def top_failing_servers(df: pd.DataFrame, top: int = 10) -> Figure:
    """The servers (IP:port and SNI) with the most failed handshakes, each bar stacked by
    failure category and labelled with ``failed of connections (rate)``."""
    worst = agg.worst_servers(df, top=top)
    fig = _figure((10.0, 1.3 + 0.45 * max(len(worst), 4)))
    ax = fig.subplots()
    ax.set_title("Servers with the most failed handshakes", fontweight="bold", y=1.0)
    ax.set_xlabel("failed handshakes (count)")
    ax.set_ylabel("server IP:port (SNI)")
    if worst.empty:
        _empty(ax, "no failed handshakes")
        _place_one(fig)
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
    y = np.arange(len(worst))[::-1].astype(float)
    left = np.zeros(len(worst))
    verts, colours = [], []
    for cat in cats:
        pairs = zip(worst["server"], worst["sni"], strict=True)
        values = np.array([counts.get((s, n, cat), 0) for s, n in pairs], dtype=float)
        shown = values > 0
        if shown.any():
            verts.append(_boxes(y[shown], left[shown], values[shown], 0.7, horizontal=True))
            colours.append(color(cat))
            left += values
    _bars(ax, verts, colours)
    for yi, row in zip(y, _rows(worst), strict=True):
        ax.text(
            float(row["failed"]) + 0.1,
            yi,
            f" {row['failed']} of {row['connections']} ({row['failure_rate']:.0%})",
            va="center",
            fontsize="small",
        )
    ax.set_yticks(y, labels)
    ax.set_ylim(-0.6, len(worst) - 0.4)
    ax.set_xlim(0, float(worst["failed"].max()) * 1.4 + 1)
    ax.xaxis.set_major_locator(_counts())
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    _legend(ax, _keys(cats), "failure category")
    _place_one(fig, labels, right=_legend_width(cats, "failure category"))
    return fig


def version_outcome_heatmap(df: pd.DataFrame) -> Figure:
    """Negotiated TLS version × outcome, counts in each cell."""
    fig = _figure((7.5, 4.0))
    ax = fig.subplots()
    ax.set_title("Negotiated TLS version × outcome", fontweight="bold", y=1.0)
    ax.set_xlabel("outcome")
    ax.set_ylabel("negotiated version")
    matrix = agg.version_outcome_matrix(df)
    if matrix.empty:
        _empty(ax, "no connections")
        _place_one(fig)
        return fig
    values = matrix.to_numpy(dtype=float)
    rows = ["not negotiated" if v == agg.NONE_LABEL else plain(v) for v in matrix.index]
    _place_one(fig, rows, right=_PAD + _line() + 0.45)  # the colour bar's ticks and label
    image = ax.imshow(values, cmap="Blues", aspect="auto", vmin=0)
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
    bar = fig.colorbar(image, ax=ax, label="connections (count)", fraction=0.08, pad=0.03)
    bar.ax.yaxis.set_major_locator(_counts())
    return fig


def handshake_funnel(df: pd.DataFrame) -> Figure:
    """How far handshakes got: one bar per stage, as long as the number of connections that
    reached it; the part that stopped there is split into failures (by category),
    established connections and connections that were cut off or not blamed."""
    fig = _figure((10.0, 4.8))
    ax = fig.subplots()
    ax.set_title("How far handshakes got", fontweight="bold", y=1.0)
    ax.set_xlabel("connections (count)")
    ax.set_ylabel("handshake stage")
    if df.empty:
        _empty(ax, "no connections")
        _place_one(fig)
        return fig
    funnel = agg.stage_funnel(df)
    stage = df["stage"].astype("object").to_numpy()
    failure = df["failure"].astype("object").to_numpy()
    outcome = df["outcome"].astype("object").to_numpy()
    stages = list(funnel["stage"])
    y = np.arange(len(stages))[::-1].astype(float)
    continued = np.append(funnel["reached"].to_numpy()[1:], 0).astype(float)
    at = {s: i for i, s in enumerate(stages)}
    where = np.array([at.get(s, -1) for s in stage], dtype=int)

    def per_stage(mask: np.ndarray) -> np.ndarray:
        hits = where[mask & (where >= 0)]
        return np.bincount(hits, minlength=len(stages)).astype(float)

    verts = [_boxes(y, np.zeros(len(y)), continued, 0.7, horizontal=True)]
    colours = [color("continued")]
    left = continued.copy()
    not_failed = pd.isna(failure)
    cats = [c for c in FAILURES if (failure == c).any()]
    parts = [(color(cat), per_stage(failure == cat)) for cat in cats]
    est = per_stage(not_failed & (outcome == "established"))
    rest = per_stage(not_failed & (outcome != "established"))
    parts += [(color("established"), est), (color("incomplete"), rest)]
    for colour, values in parts:
        shown = values > 0
        verts.append(_boxes(y[shown], left[shown], values[shown], 0.7, horizontal=True))
        colours.append(colour)
        left += values
    _bars(ax, verts, colours)
    total = len(df)
    for yi, row in zip(y, _rows(funnel), strict=True):
        ax.text(
            float(row["reached"]) + total * 0.01,
            yi,
            f"{row['reached']} ({row['share']:.0%})",
            va="center",
            fontsize="small",
        )
    names = [s.replace("_", " ") for s in stages]
    ax.set_yticks(y, names)
    ax.set_ylim(-0.6, len(stages) - 0.4)
    ax.set_xlim(0, total * 1.15)
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    handles = [Key("went further", color("continued")), *_keys(cats)]
    if est.any():
        handles.append(Key("established", color("established")))
    if rest.any():
        handles.append(Key("incomplete or not blamed", color("incomplete")))
    _legend(ax, handles, "at this stage")
    _place_one(fig, names, right=_legend_width([h.label for h in handles], "at this stage"))
    return fig


def handshake_time_distribution(df: pd.DataFrame) -> Figure:
    """Histogram of handshake durations (ClientHello → established or failure), log scale,
    successes and failures side by side, with their medians."""
    fig = _figure((9.0, 4.5))
    ax = fig.subplots()
    ax.set_title("Handshake time: established vs failed", fontweight="bold", y=1.0)
    ax.set_xlabel("handshake time (ms, log scale)")
    ax.set_ylabel("connections (count)")
    times = agg.handshake_times(df)
    times = times[times["handshake_ms"] > 0]
    if times.empty:
        _empty(ax, "no handshake times")
        _place_one(fig)
        return fig
    lo = max(float(times["handshake_ms"].min()), 1e-3)
    hi = max(float(times["handshake_ms"].max()), lo * 10)
    bins = np.geomspace(lo / 1.2, hi * 1.2, 30)
    groups = [g for g in ("established", "failed") if (times["group"] == g).any()]
    data = [times.loc[times["group"] == g, "handshake_ms"].to_numpy() for g in groups]
    # Side by side in each bin, as a grouped histogram draws them: 80 % of the bin.
    span = np.diff(bins)
    handles: list[Key] = []
    peak = 0.0
    for k, (g, d) in enumerate(zip(groups, data, strict=True)):
        counts, _ = np.histogram(d, bins=bins)
        shown = counts > 0
        start = bins[:-1] + span * (0.1 + 0.8 * k / len(groups))
        width = (span * 0.8 / len(groups))[shown]
        height = counts[shown].astype(float)
        verts = _boxes(start[shown], np.zeros(len(height)), height, width, horizontal=False)
        _bars(ax, [verts], [color(g)], label=f"{g} ({len(d)})")
        handles.append(Key(f"{g} ({len(d)})", color(g)))
        peak = max(peak, float(counts.max()))
    for g, d in zip(groups, data, strict=True):
        median = float(np.median(d))
        label = f"median {g}: {median:.1f} ms"
        ax.axvline(median, color=color(g), linestyle="--", label=label)
        handles.append(Key(label, color(g), dashed=True))
    ax.set_xscale("log")
    ax.set_xlim(bins[0], bins[-1])
    ax.set_ylim(0, peak * 1.05)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_locator(_counts())
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    _legend(ax, handles, None, inside=True)
    _place_one(fig, _count_labels(peak))
    return fig


def failure_categories(df: pd.DataFrame) -> Figure:
    """Failed handshakes per category, most frequent first, with share of all failures."""
    cats = agg.failure_categories(df)
    fig = _figure((9.0, max(2.8, 1.2 + 0.38 * len(cats))))
    ax = fig.subplots()
    ax.set_title("Failure categories", fontweight="bold", y=1.0)
    ax.set_xlabel("failed handshakes (count)")
    ax.set_ylabel("failure category")
    if cats.empty:
        _empty(ax, "no failed handshakes")
        _place_one(fig)
        return fig
    y = np.arange(len(cats))[::-1].astype(float)
    names = [str(c) for c in cats["failure"]]
    widths = cats["count"].to_numpy(dtype=float)
    boxes = _boxes(y, np.zeros(len(y)), widths, 0.7, horizontal=True)
    _bars(ax, [boxes[i : i + 1] for i in range(len(y))], [color(c) for c in names])
    for yi, row in zip(y, _rows(cats), strict=True):
        ax.text(
            float(row["count"]) + 0.1,
            yi,
            f" {row['count']} ({row['share']:.0%}), ended by {row['failure_side']}",
            va="center",
            fontsize="small",
        )
    ax.set_yticks(y, names)
    ax.set_ylim(-0.6, len(cats) - 0.4)
    ax.set_xlim(0, float(cats["count"].max()) * 1.3 + 1)
    ax.xaxis.set_major_locator(_counts())
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    _place_one(fig, names)
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
