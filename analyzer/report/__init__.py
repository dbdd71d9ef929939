"""Presenting records to people: the self-contained HTML report (:mod:`.html`) and the
terminal views of ``tlsa summary`` and ``tlsa show`` (:mod:`.terminal`).

Edges of the pipeline: they read finished, merged records (and the aggregations of
:mod:`analyzer.aggregate`), never parser state.
"""

from __future__ import annotations

from analyzer.report.html import REPORT_FILE, esc, render, write

__all__ = ["REPORT_FILE", "esc", "render", "write"]
