"""Figures: each returns a Figure with the expected title, labelled axes, legend and
artists for a known input; a failure category keeps one colour in every figure."""

from __future__ import annotations

import io
import subprocess
import sys
from typing import Any

import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from analyzer import plots
from analyzer.frame import to_dataframe
from analyzer.record import FAILURES, HandshakeRecord

T0 = 1_700_000_000.0


def rec(n: int, **kw: Any) -> HandshakeRecord:
    base: dict[str, Any] = {
        "uid": f"C{n:05d}",
        "capture": "t.pcap",
        "ts": T0 + n * 10,
        "ts_end": T0 + n * 10 + 1,
        "client_ip": "192.0.2.1",
        "client_port": 40000 + n,
        "server_ip": "198.51.100.1",
        "server_port": 443,
    }
    base.update(kw)
    return HandshakeRecord(**base)


def ok(n: int, **kw: Any) -> HandshakeRecord:
    return rec(
        n,
        outcome="established",
        stage="application_data",
        version="TLSv1.3",
        handshake_time=0.01 + n / 1000,
        **kw,
    )


def bad(n: int, failure: str, **kw: Any) -> HandshakeRecord:
    return rec(
        n,
        outcome="failed",
        failure=failure,
        failure_side="client",
        stage=kw.pop("stage", "server_hello"),
        handshake_time=0.002 + n / 1000,
        **kw,
    )


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    """12 connections: 6 established, 4 certificate_expired on api, 2 version_mismatch on www."""
    records = [ok(i, sni="www.example") for i in range(6)]
    records += [
        bad(
            6 + i,
            "certificate_expired",
            sni="api.example",
            server_ip="198.51.100.2",
            version="TLSv1.3",
        )
        for i in range(4)
    ]
    records += [
        bad(10 + i, "version_mismatch", sni="www.example", stage="client_hello") for i in range(2)
    ]
    return to_dataframe(records)


def _check_labels(fig: Figure) -> list[Axes]:
    """Title on the figure or its first axes; x and y labels on every data axes."""
    axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    title = fig.texts[0].get_text() if fig.texts else axes[0].get_title()
    assert title
    for ax in axes:
        assert ax.get_xlabel() or ax is not axes[-1]
        assert ax.get_ylabel()
    return axes


def _legend_colours(ax: Axes) -> dict[str, str]:
    entries = plots.legend_entries(ax)
    assert entries
    return entries


def _notes(ax: Axes) -> list[str]:
    """The texts drawn on the axes, legend texts left out."""
    return [t.get_text() for t in ax.texts if not str(t.get_gid()).startswith(plots.LEGEND_GID)]


class Bar:
    """One drawn bar: its extent in data coordinates and its colour."""

    def __init__(self, x0: float, x1: float, y0: float, y1: float, colour: str) -> None:
        self.x0, self.x1, self.y0, self.y1, self.colour = x0, x1, y0, y1, colour

    def get_width(self) -> float:
        return self.x1 - self.x0

    def get_height(self) -> float:
        return self.y1 - self.y0


def _bars(ax: Axes) -> list[Bar]:
    """Every bar drawn on the axes, whether as a patch or as a rectangle of a collection."""
    out = [
        Bar(p.get_x(), p.get_x() + p.get_width(), p.get_y(), p.get_y() + p.get_height(),
            to_hex(p.get_facecolor()))
        for p in ax.patches
        if isinstance(p, Rectangle) and p.get_width() > 0 and p.get_height() > 0
    ]  # fmt: skip
    for coll in ax.collections:
        if not isinstance(coll, PolyCollection) or coll.get_gid() == plots.LEGEND_GID:
            continue
        paths = coll.get_paths()
        faces = coll.get_facecolor()
        for i, path in enumerate(paths):
            (x0, y0), (x1, y1) = path.vertices.min(axis=0), path.vertices.max(axis=0)
            out.append(Bar(x0, x1, y0, y1, to_hex(faces[i % len(faces)])))
    return out


def test_the_colour_mapping_is_complete_and_distinct() -> None:
    assert set(plots.FAILURE_COLORS) == set(FAILURES)
    assert len(set(plots.FAILURE_COLORS.values())) == len(FAILURES)
    assert plots.OUTCOME_COLORS["established"] not in plots.FAILURE_COLORS.values()
    assert plots.color("not_tls") == plots.FAILURE_COLORS["not_tls"]


def test_failures_over_time(df: pd.DataFrame) -> None:
    fig = plots.failures_over_time(df, "20s")
    assert isinstance(fig, Figure)
    top, bottom = _check_labels(fig)
    assert "20 s" in fig.texts[0].get_text()
    assert top.get_ylabel() == "connections per 20 s"
    assert bottom.get_xlabel() == "time (UTC)"
    assert _legend_colours(top) == {
        "established": plots.color("established"),
        "failed": plots.color("failed"),
    }
    assert _legend_colours(bottom) == {
        c: plots.color(c) for c in ("version_mismatch", "certificate_expired")
    }
    # 6 bins of 20 s, two connections in each: 3 bins established, then 3 failed.
    bars = _bars(top)
    assert len({b.x0 for b in bars}) == 6
    assert all(b.get_width() == pytest.approx(20 / 86400) for b in bars)
    assert [(b.colour, b.get_height()) for b in sorted(bars, key=lambda b: b.x0)] == [
        (plots.color("established"), 2)
    ] * 3 + [(plots.color("failed"), 2)] * 3
    failures = _bars(bottom)
    assert sum(b.get_height() for b in failures) == 6
    assert {b.colour for b in failures} == {
        plots.color("version_mismatch"),
        plots.color("certificate_expired"),
    }


def test_time_figure_gives_each_busy_period_its_panel() -> None:
    """Captures taken days apart: one panel per busy period, all at one bin fit for the
    busy time (5 s here), not one bar per period in a bin as wide as the month."""
    from analyzer import aggregate

    days = [0, 2, 30]
    records = []
    for d in days:
        for i in range(30):  # one connection every 2 s for a minute; every third fails
            n = len(records)
            ts = T0 + d * 86400 + i * 2.0
            records.append(bad(n, "certificate_expired", ts=ts) if i % 3 == 0 else ok(n, ts=ts))
    frame = to_dataframe(records)
    assert aggregate.time_bin(frame) == "1D"  # one bin per day over the whole span
    assert plots.busy_periods([r.ts for r in records]) == [
        (T0 + d * 86400, T0 + d * 86400 + 58.0) for d in days
    ]
    fig = plots.failures_over_time(frame)
    assert "bins of 5 s" in fig.texts[0].get_text()
    axes = fig.axes
    assert len(axes) == 6  # two rows, three periods
    tops, bottoms = axes[:3], axes[3:]
    for d, top, bottom in zip(days, tops, bottoms, strict=True):
        lo, hi = top.get_xlim()
        start = plots._dates(T0 + d * 86400)
        assert lo <= start and plots._dates(T0 + d * 86400 + 58.0) < hi
        assert hi - lo < 2 / 24  # minutes wide, not days
        bars = _bars(top)
        assert sum(b.get_height() for b in bars) == 30
        assert len({b.x0 for b in bars}) == 12  # 60 s of traffic in bins of 5 s
        assert sum(b.get_height() for b in _bars(bottom)) == 10
    assert tops[0].get_ylabel() == "connections per 5 s"
    assert bottoms[0].get_xlabel() == "time (UTC)"
    assert plots.legend_entries(tops[-1]) and plots.legend_entries(bottoms[-1])


def test_busy_periods_split_only_long_empty_stretches() -> None:
    steady = [T0 + i * 60.0 for i in range(600)]  # ten hours, one connection a minute
    assert plots.busy_periods(steady) == [(steady[0], steady[-1])]
    paused = steady[:300] + [t + 3600 for t in steady[300:]]  # an hour's lunch: kept
    assert len(plots.busy_periods(paused)) == 1
    short = [T0, T0 + 1, T0 + 40, T0 + 41]  # 39 s apart: under the minimum
    assert len(plots.busy_periods(short)) == 1
    daily = [T0 + d * 86400 + s for d in range(5) for s in (0.0, 30.0)]
    assert len(plots.busy_periods(daily)) == 5
    weeks = [T0 + d * 86400 + s for d in range(20) for s in (0.0, 30.0)]
    assert len(plots.busy_periods(weeks)) == 1  # more than six: one axis
    uneven = [*weeks, T0 + 40 * 86400]  # ...unless a few stretches stand out
    assert plots.busy_periods(uneven) == [(weeks[0], weeks[-1]), (uneven[-1], uneven[-1])]
    assert plots.busy_periods([]) == []


def test_top_failing_servers(df: pd.DataFrame) -> None:
    fig = plots.top_failing_servers(df, top=5)
    (ax,) = _check_labels(fig)
    assert ax.get_xlabel() == "failed handshakes (count)"
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["198.51.100.1:443  (www.example)", "198.51.100.2:443  (api.example)"][::-1]
    bars = _bars(ax)
    assert {(b.get_width(), b.colour) for b in bars} == {
        (4, plots.color("certificate_expired")),
        (2, plots.color("version_mismatch")),
    }
    notes = sorted(t.strip() for t in _notes(ax))
    assert notes == ["2 of 8 (25%)", "4 of 4 (100%)"]
    assert set(_legend_colours(ax).items()) <= set(plots.COLORS.items())


def test_version_outcome_heatmap(df: pd.DataFrame) -> None:
    fig = plots.version_outcome_heatmap(df)
    (ax,) = _check_labels(fig)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["TLSv1.3", "not negotiated"]
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "established",
        "failed",
        "incomplete",
        "not_tls",
    ]
    assert [t.get_text() for t in ax.texts] == ["6", "4", "0", "0", "0", "2", "0", "0"]
    assert len(fig.axes) == 2  # the colour bar
    assert fig.axes[1].get_ylabel() == "connections (count)"


def test_handshake_funnel(df: pd.DataFrame) -> None:
    fig = plots.handshake_funnel(df)
    (ax,) = _check_labels(fig)
    assert len(ax.get_yticks()) == 9
    notes = _notes(ax)
    assert notes[0] == "12 (100%)" and notes[2] == "12 (100%)"  # tcp_syn, client_hello
    assert notes[3] == "10 (83%)"  # server_hello
    assert notes[-1] == "6 (50%)"  # application_data
    colours = _legend_colours(ax)
    assert colours["certificate_expired"] == plots.color("certificate_expired")
    assert colours["established"] == plots.color("established")
    assert colours["went further"] == plots.color("continued")


def test_handshake_time_distribution(df: pd.DataFrame) -> None:
    fig = plots.handshake_time_distribution(df)
    (ax,) = _check_labels(fig)
    assert ax.get_xscale() == "log"
    assert "ms" in ax.get_xlabel()
    texts = list(_legend_colours(ax))
    assert texts[:2] == ["established (6)", "failed (6)"]
    assert texts[2].startswith("median established: ")
    assert len(ax.lines) == 2  # the medians
    assert sum(b.get_height() for b in _bars(ax)) == 12


def test_failure_categories(df: pd.DataFrame) -> None:
    fig = plots.failure_categories(df)
    (ax,) = _check_labels(fig)
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert names == ["certificate_expired", "version_mismatch"]  # most frequent on top
    bars = _bars(ax)
    assert len(bars) == 2
    by_width = {b.get_width(): b.colour for b in bars}
    assert by_width == {4: plots.color("certificate_expired"), 2: plots.color("version_mismatch")}


def test_each_category_keeps_its_colour_across_figures(df: pd.DataFrame) -> None:
    seen: dict[str, set[str]] = {}
    for name, make in plots.FIGURES.items():
        fig = make(df)
        for ax in fig.axes:
            for label, colour in plots.legend_entries(ax).items():
                seen.setdefault(label, set()).add(colour)
        if name == "failure_categories":
            ax = fig.axes[0]
            labels = [t.get_text() for t in ax.get_yticklabels()]
            bars = sorted(_bars(ax), key=lambda b: -b.y0)  # top to bottom, as the labels
            for label, bar in zip(labels, bars, strict=True):
                seen.setdefault(label, set()).add(bar.colour)
    for label in ("certificate_expired", "version_mismatch", "established"):
        assert seen[label] == {plots.color(label)}, label


def test_empty_and_hostile_inputs_still_draw() -> None:
    empty = to_dataframe([])
    hostile = to_dataframe(
        [bad(1, "other_alert", sni="$\\frac{a}{b}$ <b>" + "x" * 80 + "\x1b[31m")]
    )
    for frame in (empty, hostile):
        for make in plots.FIGURES.values():
            fig = make(frame)
            fig.savefig(io.BytesIO(), format="png")
    fig = plots.top_failing_servers(hostile)
    label = fig.axes[0].get_yticklabels()[0].get_text()
    assert "\\$" in label and "\x1b" not in label and label.endswith("…)")


def test_figures_do_not_use_pyplot() -> None:
    code = (
        "import sys, analyzer.plots as p, analyzer.frame as f\n"
        "fig = p.handshake_funnel(f.to_dataframe([]))\n"
        "print('matplotlib.pyplot' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
