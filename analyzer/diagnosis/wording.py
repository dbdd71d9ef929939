"""Shared wording of reasons: times, versions, the server, alerts, offers, how a
connection ended. Every rule family words its evidence with these, so the same fact reads
the same in every reason."""

from __future__ import annotations

import time

from analyzer.diagnosis import remedies as rm
from analyzer.diagnosis.readings import EVICTED, rank
from analyzer.record import AlertInfo, HandshakeRecord


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.0f} s"


def plural(count: int, word: str) -> str:
    """``1 datagram``, ``3 datagrams``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def when(epoch: float | None) -> str:
    if epoch is None:
        return "?"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch))


def versions_text(versions: list[str]) -> str:
    if not versions:
        return "no version"
    ordered = sorted(versions, key=rank)
    return ordered[0] if len(ordered) == 1 else f"{ordered[0]}–{ordered[-1]}"


def server(r: HandshakeRecord) -> str:
    name = f" ({r.sni})" if r.sni else ""
    return f"{rm.target(r)}{name}"


def alert_text(a: AlertInfo) -> str:
    return f"{a.sender} sent {a.level or ''} {a.description}".replace("  ", " ")


def after_ch(r: HandshakeRecord, ts: float | None) -> str:
    if r.ts_client_hello is None or ts is None:
        return ""
    return f" {ms(ts - r.ts_client_hello)} after the ClientHello"


def offered_ciphers_text(r: HandshakeRecord, limit: int = 4) -> str:
    shown = [c for c in r.offered_ciphers if "SCSV" not in c]
    more = f" and {len(shown) - limit} more" if len(shown) > limit else ""
    count = f"{len(shown)} cipher suite{'s' if len(shown) != 1 else ''}"
    return f"{count} ({', '.join(shown[:limit])}{more})" if shown else "no cipher suites"


def groups_text(r: HandshakeRecord, limit: int = 6) -> str:
    groups = r.offered_groups or r.key_share_groups
    if not groups:
        return "no groups"
    shown = [g + (" (key share)" if g in r.key_share_groups else "") for g in groups[:limit]]
    more = f" and {len(groups) - limit} more" if len(groups) > limit else ""
    return f"groups {', '.join(shown)}{more}"


ENDED = {
    "fin": "the connection was closed",
    "rst_client": "the client reset the connection",
    "rst_server": "the server reset the connection",
    "idle_timeout": "the connection went idle",
    "capture_end": "the capture ended",
}


def ended(r: HandshakeRecord) -> str:
    """How the observation of the connection ended, in words."""
    if EVICTED in r.anomalies:
        return "the analyzer's connection table was full (flow_table_limit)"
    return ENDED.get(r.close, r.close)


def mtu_hole(r: HandshakeRecord) -> str:
    """Why full-size segments are lost, naming the hop that reported the MTU where an ICMP
    fragmentation-needed or Packet Too Big error was captured."""
    if r.icmp_error != "fragmentation_needed":
        return "an MTU black hole (ICMP 'fragmentation needed' blocked)"
    mtu = f" of {r.icmp_mtu} bytes" if r.icmp_mtu else ""
    return (
        f"an MTU black hole: {r.icmp_from} reported a next-hop MTU{mtu} (ICMP "
        "fragmentation needed / Packet Too Big), yet full-size segments kept coming: the "
        "error does not reach the sender (a firewall drops it) or the sender ignores it"
    )


def mtu_probe(r: HandshakeRecord) -> str:
    """A ping that needs the path to carry the packets the connection sent (or, where a hop
    reported its MTU, exactly that size)."""
    v6 = ":" in r.server_ip
    headers = 48 if v6 else 28  # IP and ICMP echo headers
    size = r.icmp_mtu - headers if r.icmp_mtu and r.icmp_mtu > headers else 1500 - headers
    return f"ping{' -6' if v6 else ''} -M do -s {size} {r.server_ip}"
