"""The certificate inventory: every server certificate a capture shows, and what its
clients made of it (``tlsa certs``, :func:`certificates`, the report's certificates section).

One row per leaf certificate (SHA-256) per capture, built from finished records: subject,
issuer, SANs, validity and the days left at capture time, key, the servers and names that
presented it, how many connections completed their handshake with it and how many
rejected it (with which alerts), ``cert_status`` and ``cert_trust``. Sorted so that what
breaks next comes first: certificates some clients rejected, then those expiring soonest.

Only certificates visible in the capture are listed: TLS 1.3 hides the server's
certificate unless a key log decrypts it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

from analyzer.record import HandshakeRecord

if TYPE_CHECKING:
    import pandas as pd

@dataclass(frozen=True, slots=True, kw_only=True)
class Certificate:
    """One server certificate of one capture, and what its clients made of it."""

    capture: str
    sha256: str
    """SHA-256 of the leaf (DER)."""
    subject: str | None
    issuer: str | None
    sans: list[str]
    not_before: float | None
    not_after: float | None
    days_left: float | None
    """Days from the last connection that presented it to its end of validity."""
    key: str | None
    servers: list[str]
    """``address:port`` of the servers that presented it."""
    names: list[str]
    """The SNIs clients asked for when they got it."""
    completed: int
    """Connections whose client completed its handshake with it."""
    rejected: int
    """Connections whose client turned it down (a certificate failure on its side)."""
    rejected_alerts: dict[str, int]
    """The alerts of those clients, with counts."""
    cert_status: str | None
    cert_trust: str | None
    first_seen: float
    last_seen: float


COLUMNS = tuple(f.name for f in fields(Certificate))
"""The inventory's columns, in order."""

_REJECTIONS = frozenset(
    {
        "certificate_expired",
        "certificate_untrusted",
        "certificate_invalid",
        "sni_mismatch",
    }
)
"""Failure categories in which the client turned the certificate down."""


@dataclass(slots=True)
class _Leaf:
    first: HandshakeRecord
    servers: Counter[str] = field(default_factory=Counter)
    names: Counter[str] = field(default_factory=Counter)
    completed: int = 0
    rejected: int = 0
    alerts: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    trusts: Counter[str] = field(default_factory=Counter)
    last_seen: float = 0.0


def _most(counter: Counter[str]) -> str | None:
    return min(counter, key=lambda k: (-counter[k], k)) if counter else None


def inventory(records: Iterable[HandshakeRecord]) -> list[Certificate]:
    """The inventory, most urgent first."""
    leaves: dict[tuple[str, str], _Leaf] = {}
    for r in records:
        if not r.cert_chain_sha256:
            continue
        key = (r.capture, r.cert_chain_sha256[0])
        leaf = leaves.get(key)
        if leaf is None:
            leaf = leaves[key] = _Leaf(first=r, last_seen=r.ts)
        leaf.last_seen = max(leaf.last_seen, r.ts)
        leaf.servers[f"{r.server_ip}:{r.server_port}"] += 1
        if r.sni:
            leaf.names[r.sni] += 1
        if r.outcome == "established":
            leaf.completed += 1
        elif r.failure in _REJECTIONS and r.failure_side == "client":
            leaf.rejected += 1
            for a in r.alerts:
                if a.sender == "client" and a.description:
                    leaf.alerts[a.description] += 1
        if r.cert_status:
            leaf.statuses[r.cert_status] += 1
        if r.cert_trust:
            leaf.trusts[r.cert_trust] += 1
    rows = [_row(key, leaf) for key, leaf in leaves.items()]
    rows.sort(key=_urgency)
    return rows


def _row(key: tuple[str, str], leaf: _Leaf) -> Certificate:
    r = leaf.first
    days_left = None
    if r.cert_not_after is not None:
        days_left = round((r.cert_not_after - leaf.last_seen) / 86400, 1)
    return Certificate(
        capture=key[0],
        sha256=key[1],
        subject=r.cert_subject,
        issuer=r.cert_issuer,
        sans=list(r.cert_sans),
        not_before=r.cert_not_before,
        not_after=r.cert_not_after,
        days_left=days_left,
        key=r.cert_key,
        servers=sorted(leaf.servers),
        names=sorted(leaf.names),
        completed=leaf.completed,
        rejected=leaf.rejected,
        rejected_alerts=dict(sorted(leaf.alerts.items())),
        cert_status=_most(leaf.statuses),
        cert_trust=_most(leaf.trusts),
        first_seen=r.ts,
        last_seen=leaf.last_seen,
    )


def _urgency(c: Certificate) -> tuple[int, float, str]:
    """Rejected by some clients first, then by days left (unknown last)."""
    days = c.days_left if c.days_left is not None else float("inf")
    return (0 if c.rejected else 1, days, c.sha256)


def certificates(records: Iterable[HandshakeRecord]) -> pd.DataFrame:
    """The inventory as a DataFrame (``not_before``, ``not_after``, ``first_seen``,
    ``last_seen`` as UTC datetimes)."""
    import pandas as pd

    df = pd.DataFrame([asdict(c) for c in inventory(records)], columns=list(COLUMNS))
    for col in ("not_before", "not_after", "first_seen", "last_seen"):
        df[col] = pd.to_datetime(df[col].astype("float64"), unit="s", utc=True)
    return df
