"""Values produced by frame decoding: a TCP segment, a UDP datagram, an ICMP
destination-unreachable error about a TCP segment or UDP datagram, or a reason to skip.

IP addresses stay as packed ``bytes`` (4 or 16) on the per-packet path; they become text
only when a record is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, NamedTuple

from analyzer.anomalies import Anomaly

FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
PSH: Final = 0x08
ACK: Final = 0x10
URG: Final = 0x20


class Segment(NamedTuple):
    """A TCP segment."""

    ts: float
    src: bytes
    dst: bytes
    sport: int
    dport: int
    seq: int
    ack: int
    flags: int
    window: int
    payload: bytes
    truncated: bool
    """The snaplen cut this segment: ``payload`` is shorter than the segment was."""


class Datagram(NamedTuple):
    """A UDP datagram (QUIC or DTLS, or other traffic)."""

    ts: float
    src: bytes
    dst: bytes
    sport: int
    dport: int
    length: int
    """Payload length per the UDP header."""
    payload: bytes
    truncated: bool
    """The snaplen cut this datagram: ``payload`` is shorter than ``length``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IcmpUnreachable:
    """An ICMPv4 type 3 or ICMPv6 type 1 (destination unreachable) error quoting a TCP
    segment or a UDP datagram (:mod:`analyzer.decode.icmp` names its codes). Rare: not a
    NamedTuple built for speed like the others."""

    ts: float
    src: bytes
    """Who sent the error (packed address): the destination host itself, or a router or
    firewall on the path."""
    v6: bool
    """ICMPv6 (type 1) rather than ICMPv4 (type 3)."""
    code: int
    """The ICMP code (:class:`~analyzer.decode.icmp.Icmp4UnreachableCode`,
    :class:`~analyzer.decode.icmp.Icmp6UnreachableCode`)."""
    key: tuple[bytes, int, bytes, int]
    """The quoted packet's (source address, source port, destination address,
    destination port): the flow table's key shape, in the quoted packet's orientation."""
    udp: bool = False
    """The quoted packet is a UDP datagram (else a TCP segment)."""
    too_big: bool = False
    """ICMPv6 Packet Too Big (type 2) rather than destination unreachable."""
    mtu: int | None = None
    """The next hop's MTU, from a Packet Too Big or a fragmentation-needed error."""


class Skipped(NamedTuple):
    """A frame that carries no TCP or UDP we can use, with the anomaly if it was odd.

    ``anomaly`` is None for ordinary other traffic (ARP, ICMP echo, errors about UDP, ...).
    """

    ts: float
    anomaly: Anomaly | None


Decoded = Segment | Datagram | IcmpUnreachable | Skipped
