"""The Wireshark display filter of one connection (SPEC §3 ``wireshark_filter``): a pure
function of its addresses, ports, transport and, where its 4-tuple repeats in the
capture, its time span. The record builder fills the plain filter; the time bound is added
with the cross-connection evidence (:class:`analyzer.diagnosis.cross.Evidence`), once every
connection of the capture is known (:class:`~analyzer.diagnosis.tuples.TupleStarts`).
"""

from __future__ import annotations

import math
from typing import Protocol

from analyzer.record import HandshakeRecord, evolve

UDP_TRANSPORTS = frozenset({"quic", "dtls"})


def _usec_floor(ts: float) -> int:
    n = ts * 1e6
    r = round(n)
    return r if abs(n - r) < 1e-3 else math.floor(n)


def _epoch(us: int) -> str:
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def display_filter(
    *,
    client_ip: str,
    client_port: int,
    server_ip: str,
    server_port: int,
    transport: str = "tcp",
    since: float | None = None,
    until: float | None = None,
) -> str:
    """A Wireshark display filter selecting exactly one connection's packets.

    ``since``: the connection's first packet time; ``until``: the first packet time of the
    next connection on the same 4-tuple (excluded). Give them only when the 4-tuple occurs
    more than once in the capture. Times are written in whole microseconds."""
    v6 = ":" in client_ip or ":" in server_ip
    addr = "ipv6.addr" if v6 else "ip.addr"
    port = "udp.port" if transport in UDP_TRANSPORTS else "tcp.port"
    parts = [
        f"{addr}=={client_ip}",
        f"{addr}=={server_ip}",
        f"{port}=={client_port}",
        f"{port}=={server_port}",
    ]
    if since is not None:
        parts.append(f"frame.time_epoch>={_epoch(_usec_floor(since))}")
    if until is not None:
        parts.append(f"frame.time_epoch<{_epoch(_usec_floor(until))}")
    return " && ".join(parts)


class Bounds(Protocol):
    """Where a record's 4-tuple repeats in its capture
    (:class:`analyzer.diagnosis.tuples.TupleStarts`)."""

    def bound(self, r: HandshakeRecord) -> tuple[float, float | None] | None: ...


def record_filter(r: HandshakeRecord, tuples: Bounds | None = None) -> str:
    """:func:`display_filter` of a record; ``tuples``: the run's 4-tuples, for a time bound
    where the record's repeats."""
    bound = tuples.bound(r) if tuples is not None else None
    return display_filter(
        client_ip=r.client_ip,
        client_port=r.client_port,
        server_ip=r.server_ip,
        server_port=r.server_port,
        transport=r.transport,
        since=bound[0] if bound else None,
        until=bound[1] if bound else None,
    )


def with_filter(r: HandshakeRecord, text: str) -> HandshakeRecord:
    """``r`` with ``wireshark_filter`` set."""
    return evolve(r, wireshark_filter=text)
