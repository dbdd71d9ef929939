"""The report's figures as images: every figure of :data:`analyzer.plots.FIGURES` as SVG
with its title (the page's ``alt`` text), drawn here or in a second process.

SVG with text as text is what the report inlines: the browser sets the text, so no glyph
is rasterised here, and the file is half the size of a PNG. It carries no date and its
ids are fixed, so the same figure gives the same bytes wherever it is drawn.

Importing matplotlib and drawing the figures is about half of ``tlsa report``'s time, and
importing pandas and building the page most of the rest. Where a core is free
(:func:`analyzer.scale.local.free_cores`), :func:`start` forks a child that does the
figures from the records it inherited while the parent builds the page; the SVGs come
back through a pipe. Only a process with a single thread is forked (forking a threaded
one can leave the child waiting on a lock another thread held; pandas, pyarrow and
matplotlib start threads once imported, so the fork comes before they are). On a busy
machine, without ``os.fork``, or when the child fails, the figures are drawn in this
process from the same frame: the page is the same.
"""

from __future__ import annotations

import io
import os
import pickle
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from analyzer.record import HandshakeRecord

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure

Image = tuple[str, bytes]
"""A figure's title (for the page's ``alt`` text) and its SVG."""


def figure_svg(fig: Figure) -> bytes:
    """A figure as SVG with its text as text (the browser sets it; no glyph is drawn here):
    several times cheaper to make than a PNG and half the size. No date and fixed ids, so
    the same figure gives the same bytes."""
    from matplotlib import rc_context

    buf = io.BytesIO()
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "tlsa"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    # Labels keep their spaces (SVG collapses runs of white space in text by default).
    root = svg.index(b">", svg.index(b"<svg ")) + 1
    return svg[:root] + b"<style>text{white-space:pre}</style>" + svg[root:]


def image(fig: Figure) -> Image:
    """A figure's title and SVG."""
    title = fig.texts[0].get_text() if fig.texts else ""
    if not title and fig.axes:
        title = fig.axes[0].get_title()
    return title, figure_svg(fig)


def draw(df: pd.DataFrame) -> dict[str, Image]:
    """Every figure of the report for one records frame."""
    from analyzer import plots

    return {name: image(make(df)) for name, make in plots.FIGURES.items()}


def _single_threaded() -> bool:
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:  # not Linux: cannot tell, so do not fork
        return False


def start(records: Sequence[HandshakeRecord]) -> Callable[[pd.DataFrame], dict[str, Image]]:
    """Start drawing the figures of ``records`` in a child process if a core is free;
    the function returned gives them (given the frame of the same records, to draw
    them here when no child could)."""
    from analyzer.scale.local import free_cores

    if not hasattr(os, "fork") or free_cores() < 2 or not _single_threaded():
        return draw
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: draw, send, leave without running the parent's exit code
        code = 1
        try:
            os.close(read_end)
            from analyzer.frame import to_dataframe

            blob = pickle.dumps(draw(to_dataframe(list(records))), pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_end, "wb") as out:
                out.write(blob)
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)

    def wait(df: pd.DataFrame) -> dict[str, Image]:
        with os.fdopen(read_end, "rb") as pipe:
            blob = pipe.read()
        _, status = os.waitpid(pid, 0)
        if status == 0 and blob:
            images: dict[str, Image] = pickle.loads(blob)
            return images
        return draw(df)  # the child failed: draw here

    return wait
