"""The UDP seam: which handshake transport a datagram belongs to, QUIC or DTLS.

A datagram that starts a QUIC connection or a DTLS association is recognised by its first
bytes, on any port (SPEC §2): a QUIC long header (RFC 9000 §17.2: the two high bits set,
then a 32-bit version) or a DTLS record (RFC 6347 §4.1: content type 20-25, then a
version 0xfeXX; RFC 9147 §4: the unified header's first bits ``001``). The transports
themselves (connection IDs, Initial keys, records, fragments) live beside TCP's, in
their own packages; this module only routes.

Not routed yet: :class:`UdpSeam` classifies and counts, and returns no records.
"""

from __future__ import annotations

from typing import Final, Literal

from analyzer.decode.types import Datagram, IcmpUnreachable
from analyzer.record import HandshakeRecord

UdpKind = Literal["quic", "dtls"]

_DTLS_CONTENT_TYPES: Final = range(20, 26)


def classify(payload: bytes) -> UdpKind | None:
    """QUIC or DTLS by the first bytes of a datagram, or None for other traffic."""
    if len(payload) < 5:
        return None
    first = payload[0]
    if first & 0xC0 == 0xC0:
        return "quic"  # a long header (the version decides what the packet is)
    if first in _DTLS_CONTENT_TYPES and payload[1] == 0xFE:
        return "dtls"
    if first & 0xE0 == 0x20:
        return "dtls"  # DTLS 1.3 unified header
    return None


class UdpSeam:
    """Where UDP datagrams meet the handshake transports of the engine."""

    def datagram(self, dgram: Datagram) -> list[HandshakeRecord]:
        """A UDP datagram; the records of connections it ended."""
        return []

    def icmp(self, error: IcmpUnreachable) -> None:
        """An ICMP destination-unreachable error quoting a UDP datagram."""
