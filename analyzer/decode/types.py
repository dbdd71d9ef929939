"""Values produced by frame decoding: a TCP segment, a UDP datagram, or a reason to skip.

IP addresses stay as packed ``bytes`` (4 or 16) on the per-packet path; they become text
only when a record is written.
"""

from __future__ import annotations

from typing import NamedTuple

from analyzer.anomalies import Anomaly

FIN = 0x01
SYN = 0x02
RST = 0x04
PSH = 0x08
ACK = 0x10
URG = 0x20


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
    """A UDP datagram (counted for QUIC/DTLS, not analyzed)."""

    ts: float
    src: bytes
    dst: bytes
    sport: int
    dport: int
    length: int


class Skipped(NamedTuple):
    """A frame that carries no TCP or UDP we can use, with the anomaly if it was odd.

    ``anomaly`` is None for ordinary non-TCP traffic (ARP, ICMP, ...).
    """

    ts: float
    anomaly: Anomaly | None


Decoded = Segment | Datagram | Skipped
