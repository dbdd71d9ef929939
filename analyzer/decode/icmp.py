"""ICMP "destination unreachable" errors that quote a TCP segment or a UDP datagram.

What it does: reads an ICMPv4 type 3 message (RFC 792; codes from RFC 1122 §3.2.2.1 and
RFC 1812 §5.2.7.1) or an ICMPv6 type 1 message (RFC 4443 §3.1) and, when its body quotes
an IPv4 or IPv6 packet carrying TCP or UDP with at least the first 8 bytes of its header
(ports, and TCP's sequence number: all RFC 792 promises), returns
:class:`IcmpUnreachable`: who sent the error and which 4-tuple it was about, as the
quoted packet had it.

ICMPv6 Packet Too Big (type 2, RFC 4443 §3.2) is read the same way: it is IPv6's
"fragmentation needed" (ICMPv4 type 3 code 4), and both carry the MTU of the next hop
(RFC 1191 §4, RFC 8201 §4): path MTU discovery, and the evidence of an MTU black hole.

What it does not do: other ICMP types (echo, time exceeded, neighbour discovery) and
errors quoting anything else are ordinary traffic (``Skipped(ts, None)``).
The checksum is not verified, RFC 4884 extension objects are ignored, and a quoted IP
packet that is a non-first fragment quotes no transport header.

Total, like the rest of :mod:`analyzer.decode`: any bytes give a value, never an
exception; an error too short for its own header or for the quoted IP and TCP headers
is ``Skipped`` with ``BAD_ICMP`` (or ``SNAPLEN_TRUNCATED`` when the snaplen cut it).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Final

from analyzer.anomalies import Anomaly
from analyzer.decode.types import IcmpUnreachable, Skipped
from analyzer.limits import MAX_IPV6_EXT_HEADERS

ICMP4_DEST_UNREACHABLE: Final = 3
ICMP6_DEST_UNREACHABLE: Final = 1
ICMP6_PACKET_TOO_BIG: Final = 2
_TCP: Final = 6
_UDP: Final = 17
_FRAGMENT: Final = 44
_AH: Final = 51
_EXT_OPTIONS: Final = frozenset({0, 43, 60, 135, 139, 140})
_QUOTED: Final = 8
"""Bytes of the quoted transport header RFC 792 promises (TCP: ports and sequence number;
UDP: the whole header)."""


class Icmp4UnreachableCode(IntEnum):
    """ICMPv4 type 3 codes (IANA "ICMP Type Numbers", type 3)."""

    NET_UNREACHABLE = 0
    HOST_UNREACHABLE = 1
    PROTOCOL_UNREACHABLE = 2
    PORT_UNREACHABLE = 3
    FRAGMENTATION_NEEDED = 4
    SOURCE_ROUTE_FAILED = 5
    DESTINATION_NETWORK_UNKNOWN = 6
    DESTINATION_HOST_UNKNOWN = 7
    SOURCE_HOST_ISOLATED = 8
    NETWORK_ADMINISTRATIVELY_PROHIBITED = 9
    HOST_ADMINISTRATIVELY_PROHIBITED = 10
    NETWORK_UNREACHABLE_FOR_TOS = 11
    HOST_UNREACHABLE_FOR_TOS = 12
    COMMUNICATION_ADMINISTRATIVELY_PROHIBITED = 13
    HOST_PRECEDENCE_VIOLATION = 14
    PRECEDENCE_CUTOFF_IN_EFFECT = 15


class Icmp6UnreachableCode(IntEnum):
    """ICMPv6 type 1 codes (IANA "ICMPv6 Parameters", type 1)."""

    NO_ROUTE_TO_DESTINATION = 0
    ADMINISTRATIVELY_PROHIBITED = 1
    BEYOND_SCOPE_OF_SOURCE_ADDRESS = 2
    ADDRESS_UNREACHABLE = 3
    PORT_UNREACHABLE = 4
    SOURCE_ADDRESS_FAILED_POLICY = 5
    REJECT_ROUTE_TO_DESTINATION = 6
    ERROR_IN_SOURCE_ROUTING_HEADER = 7
    HEADERS_TOO_LONG = 8


UNREACHABLE_NAMES: Final = (
    "net_unreachable",
    "host_unreachable",
    "protocol_unreachable",
    "port_unreachable",
    "admin_prohibited",
    "fragmentation_needed",
    "source_route_failed",
    "precedence_violation",
    "beyond_scope",
    "headers_too_long",
    "unreachable",
)
"""The closed list of what an error says, the same words for ICMPv4 and ICMPv6
(``unreachable``: a code no registry entry above names)."""

_C4: Final = Icmp4UnreachableCode
_C6: Final = Icmp6UnreachableCode
_NAMES4: Final[dict[int, str]] = {
    _C4.NET_UNREACHABLE: "net_unreachable",
    _C4.DESTINATION_NETWORK_UNKNOWN: "net_unreachable",
    _C4.NETWORK_UNREACHABLE_FOR_TOS: "net_unreachable",
    _C4.HOST_UNREACHABLE: "host_unreachable",
    _C4.DESTINATION_HOST_UNKNOWN: "host_unreachable",
    _C4.HOST_UNREACHABLE_FOR_TOS: "host_unreachable",
    _C4.PROTOCOL_UNREACHABLE: "protocol_unreachable",
    _C4.PORT_UNREACHABLE: "port_unreachable",
    _C4.FRAGMENTATION_NEEDED: "fragmentation_needed",
    _C4.SOURCE_ROUTE_FAILED: "source_route_failed",
    _C4.SOURCE_HOST_ISOLATED: "admin_prohibited",  # obsolete; RFC 1812 says use 13
    _C4.NETWORK_ADMINISTRATIVELY_PROHIBITED: "admin_prohibited",
    _C4.HOST_ADMINISTRATIVELY_PROHIBITED: "admin_prohibited",
    _C4.COMMUNICATION_ADMINISTRATIVELY_PROHIBITED: "admin_prohibited",
    _C4.HOST_PRECEDENCE_VIOLATION: "precedence_violation",
    _C4.PRECEDENCE_CUTOFF_IN_EFFECT: "precedence_violation",
}
_NAMES6: Final[dict[int, str]] = {
    _C6.NO_ROUTE_TO_DESTINATION: "net_unreachable",
    _C6.ADDRESS_UNREACHABLE: "host_unreachable",
    _C6.PORT_UNREACHABLE: "port_unreachable",
    _C6.ADMINISTRATIVELY_PROHIBITED: "admin_prohibited",
    _C6.SOURCE_ADDRESS_FAILED_POLICY: "admin_prohibited",
    _C6.REJECT_ROUTE_TO_DESTINATION: "admin_prohibited",
    _C6.BEYOND_SCOPE_OF_SOURCE_ADDRESS: "beyond_scope",
    _C6.ERROR_IN_SOURCE_ROUTING_HEADER: "source_route_failed",
    _C6.HEADERS_TOO_LONG: "headers_too_long",
}


def unreachable_name(v6: bool, code: int) -> str:
    """The word of :data:`UNREACHABLE_NAMES` for an ICMPv4 (``v6`` False) or ICMPv6
    destination-unreachable ``code``."""
    return (_NAMES6 if v6 else _NAMES4).get(code, "unreachable")


def error_name(error: IcmpUnreachable) -> str:
    """The word of :data:`UNREACHABLE_NAMES` for an error (Packet Too Big is
    ``fragmentation_needed``, as its ICMPv4 counterpart)."""
    if error.too_big:
        return "fragmentation_needed"
    return unreachable_name(error.v6, error.code)


def unreachable_code_name(v6: bool, code: int) -> str:
    """The registry's name of a code (``port unreachable``), or ``code N``."""
    try:
        member = Icmp6UnreachableCode(code) if v6 else Icmp4UnreachableCode(code)
    except ValueError:
        return f"code {code}"
    return member.name.lower().replace("_", " ")


def describe_unreachable(error: IcmpUnreachable) -> str:
    """``ICMP port unreachable (type 3 code 3)``, for a timeline; the next hop's MTU where
    the error gives one."""
    mtu = f", next-hop MTU {error.mtu}" if error.mtu else ""
    if error.too_big:
        return f"ICMPv6 packet too big (type {ICMP6_PACKET_TOO_BIG}){mtu}"
    if error.v6:
        family, kind = "ICMPv6", ICMP6_DEST_UNREACHABLE
    else:
        family, kind = "ICMP", ICMP4_DEST_UNREACHABLE
    what = unreachable_code_name(error.v6, error.code)
    return f"{family} {what} (type {kind} code {error.code}){mtu}"


def parse_icmp_unreachable(
    ts: float, data: bytes, at: int, end: int, src: bytes, *, v6: bool
) -> IcmpUnreachable | Skipped:
    """The ICMP (``v6`` False) or ICMPv6 message at ``at`` of an IP packet from ``src``
    ending at ``end`` (which may lie beyond the captured ``data``)."""
    n = len(data)
    limit = end if end < n else n
    if at + 8 > end:
        return Skipped(ts, Anomaly.BAD_ICMP)
    if at + 2 > n:
        return Skipped(ts, Anomaly.SNAPLEN_TRUNCATED)
    kind, code = data[at], data[at + 1]
    too_big = v6 and kind == ICMP6_PACKET_TOO_BIG
    if kind != (ICMP6_DEST_UNREACHABLE if v6 else ICMP4_DEST_UNREACHABLE) and not too_big:
        return Skipped(ts, None)
    mtu = None
    if too_big and at + 8 <= limit:
        mtu = int.from_bytes(data[at + 4 : at + 8])  # RFC 4443 §3.2
    elif not v6 and code == Icmp4UnreachableCode.FRAGMENTATION_NEEDED and at + 8 <= limit:
        mtu = int.from_bytes(data[at + 6 : at + 8]) or None  # RFC 1191 §4 (0: pre-1191)
    quoted = _quoted(data, at + 8, limit)
    if isinstance(quoted, Anomaly):
        if quoted is Anomaly.BAD_ICMP and end > n:
            quoted = Anomaly.SNAPLEN_TRUNCATED  # the cut may have taken what was missing
        return Skipped(ts, quoted)
    if quoted is None:
        return Skipped(ts, None)
    key, proto = quoted
    return IcmpUnreachable(
        ts=ts, src=src, v6=v6, code=code, key=key, udp=proto == _UDP, too_big=too_big, mtu=mtu
    )


def _quoted(
    data: bytes, at: int, limit: int
) -> tuple[tuple[bytes, int, bytes, int], int] | Anomaly | None:
    """The 4-tuple and protocol of the TCP segment or UDP datagram quoted at ``at``; None
    when it quotes something else; an anomaly when the quotation is too short or not IP.
    ``limit`` is where the captured bytes of the ICMP message stop."""
    if at >= limit:
        return Anomaly.BAD_ICMP
    version = data[at] >> 4
    if version == 4:
        if at + 20 > limit:
            return Anomaly.BAD_ICMP
        ihl = (data[at] & 0x0F) << 2
        if ihl < 20:
            return Anomaly.BAD_ICMP
        proto = data[at + 9]
        if proto not in (_TCP, _UDP) or ((data[at + 6] << 8) | data[at + 7]) & 0x1FFF:
            return None  # not TCP or UDP, or a later fragment: no header quoted
        qsrc = data[at + 12 : at + 16]
        qdst = data[at + 16 : at + 20]
        tcp = at + ihl  # where the transport header starts
    elif version == 6:
        if at + 40 > limit:
            return Anomaly.BAD_ICMP
        qsrc = data[at + 8 : at + 24]
        qdst = data[at + 24 : at + 40]
        nxt = data[at + 6]
        tcp = at + 40
        for _ in range(MAX_IPV6_EXT_HEADERS + 1):
            if nxt in (_TCP, _UDP):
                proto = nxt
                break
            if nxt not in _EXT_OPTIONS and nxt != _FRAGMENT and nxt != _AH:
                return None
            if tcp + 8 > limit:
                return Anomaly.BAD_ICMP
            if nxt == _FRAGMENT:
                if ((data[tcp + 2] << 8) | data[tcp + 3]) & 0xFFF8:
                    return None  # a later fragment: no transport header quoted
                size = 8
            elif nxt == _AH:
                size = (data[tcp + 1] + 2) << 2
            else:
                size = (data[tcp + 1] + 1) << 3
            nxt = data[tcp]
            tcp += size
        else:
            return Anomaly.BAD_ICMP
    else:
        return Anomaly.BAD_ICMP
    if tcp + _QUOTED > limit:
        return Anomaly.BAD_ICMP
    sport = (data[tcp] << 8) | data[tcp + 1]
    dport = (data[tcp + 2] << 8) | data[tcp + 3]
    return (qsrc, sport, qdst, dport), proto
