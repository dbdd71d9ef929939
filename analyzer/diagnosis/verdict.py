"""What a diagnosis rule reads and returns.

A rule (:data:`Rule`) reads one finished record and the :class:`Facts` derived from it
once, and returns a :class:`Verdict` when its evidence decides the case, else None (the
next rule of :data:`analyzer.diagnosis.rules.RULES` is tried).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from analyzer.record import AlertInfo, HandshakeRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class Verdict:
    outcome: str
    failure: str | None = None
    side: str | None = None
    reason: str | None = None
    remedy: str | None = None
    inferred: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Facts:
    """What the rules need besides the record: derived once per record."""

    cert_status: str | None
    cert_problems: list[str]
    """Every problem the certificate shows (``cert_status`` is the first)."""
    alert: AlertInfo | None
    """The plaintext alert that ended the handshake (first fatal, else the last one)."""


Rule = Callable[[HandshakeRecord, Facts], Verdict | None]


def failed(failure: str, side: str, reason: str, remedy: str, *, inferred: bool = False) -> Verdict:
    """A failed handshake's verdict."""
    return Verdict(
        outcome="failed", failure=failure, side=side, reason=reason, remedy=remedy,
        inferred=inferred,
    )
