"""Before and after: what changed between two runs (``tlsa diff BEFORE AFTER``).

Both sides are record DataFrames (:func:`analyzer.records_io.load_frame`: captures, or
saved JSONL/Parquet). Connections are grouped per server (``address:port``) and SNI, and
within a group per category: the failure category of a failed connection, else its
outcome (``established``, ``incomplete``, ``not_tls`` without blame). For every (server,
SNI, category) seen on either side a :class:`Change` says how many connections and what
share of the group's connections it had before and after, and an example uid of each
side, with a verdict:

- ``appeared``: none before, some after (a new failure, or a server that now answers);
- ``disappeared``: some before, none after (a fixed failure);
- ``changed``: on both sides, with another share of the group's connections;
- ``unchanged``: the same share (left out of the table unless asked for).

Rows come failures first, then by how much the share moved. Shares rather than counts
decide ``changed``, so a longer capture after the fix is not a change by itself.

Not here: reading the inputs, printing (:mod:`analyzer.cli`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

VERDICTS = ("appeared", "disappeared", "changed", "unchanged")
RATE_EPSILON = 1e-9
"""Shares closer than this are equal (they are ratios of counts)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Change:
    """One (server, SNI, category) compared."""

    server: str
    """``address:port`` (IPv6 in brackets)."""
    sni: str | None
    category: str
    """Failure category, or outcome when the connection did not fail."""
    failure: bool
    """``category`` is a failure category."""
    verdict: str
    before: int
    after: int
    before_rate: float | None
    """Share of the group's connections before (None: the group was not seen)."""
    after_rate: float | None
    before_example: str | None
    after_example: str | None

    @property
    def example(self) -> str | None:
        return self.after_example or self.before_example

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True, kw_only=True)
class Diff:
    changes: list[Change] = field(default_factory=list)
    before_total: int = 0
    after_total: int = 0
    before_outcomes: dict[str, int] = field(default_factory=dict)
    after_outcomes: dict[str, int] = field(default_factory=dict)

    def shown(self, *, unchanged: bool = False) -> list[Change]:
        return [c for c in self.changes if unchanged or c.verdict != "unchanged"]

    def as_dict(self, *, unchanged: bool = False) -> dict[str, Any]:
        return {
            "before": {"connections": self.before_total, "outcomes": self.before_outcomes},
            "after": {"connections": self.after_total, "outcomes": self.after_outcomes},
            "changes": [c.as_dict() for c in self.shown(unchanged=unchanged)],
        }


def _server(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


_Key = tuple[str, str | None, str]
_Side = dict[_Key, tuple[int, str]]
"""(server, SNI, category) -> (connections, first uid in (ts, uid) order)."""


def _side(df: pd.DataFrame) -> tuple[_Side, dict[tuple[str, str | None], int]]:
    import pandas as pd

    counts: _Side = {}
    groups: dict[tuple[str, str | None], int] = {}
    if df.empty:
        return counts, groups
    ordered = df.sort_values(["ts", "uid"])
    for ip, port, sni, outcome, failure, uid in zip(
        ordered["server_ip"], ordered["server_port"], ordered["sni"], ordered["outcome"],
        ordered["failure"], ordered["uid"], strict=True,
    ):
        name = None if pd.isna(sni) else str(sni)
        category = str(outcome) if pd.isna(failure) else str(failure)
        group = (_server(str(ip), int(port)), name)
        groups[group] = groups.get(group, 0) + 1
        key = (*group, category)
        n, example = counts.get(key, (0, str(uid)))
        counts[key] = (n + 1, example)
    return counts, groups


def _outcomes(df: pd.DataFrame) -> dict[str, int]:
    return {str(k): int(v) for k, v in df["outcome"].value_counts().items() if v}


def diff_frames(before: pd.DataFrame, after: pd.DataFrame) -> Diff:
    """Compare two record DataFrames (see the module docstring)."""
    from analyzer.record import FAILURES

    b, b_groups = _side(before)
    a, a_groups = _side(after)
    changes: list[Change] = []
    for key in sorted(set(b) | set(a), key=lambda k: (k[0], k[1] or "", k[2])):
        group = (key[0], key[1])
        nb, eb = b.get(key, (0, None))
        na, ea = a.get(key, (0, None))
        rb = nb / b_groups[group] if group in b_groups else None
        ra = na / a_groups[group] if group in a_groups else None
        if not nb:
            verdict = "appeared"
        elif not na:
            verdict = "disappeared"
        elif abs((ra or 0.0) - (rb or 0.0)) > RATE_EPSILON:
            verdict = "changed"
        else:
            verdict = "unchanged"
        changes.append(
            Change(
                server=key[0], sni=key[1], category=key[2], failure=key[2] in FAILURES,
                verdict=verdict, before=nb, after=na, before_rate=rb, after_rate=ra,
                before_example=eb, after_example=ea,
            )
        )
    changes.sort(
        key=lambda c: (
            not c.failure,
            VERDICTS.index(c.verdict),
            -abs((c.after_rate or 0.0) - (c.before_rate or 0.0)),
        )
    )
    return Diff(
        changes=changes,
        before_total=len(before),
        after_total=len(after),
        before_outcomes=_outcomes(before),
        after_outcomes=_outcomes(after),
    )
