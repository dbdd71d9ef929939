"""Which protocol a UDP datagram carries, by its first byte, and whether it opens DTLS.

What it does:

- :func:`channel` sorts a datagram by its first byte as RFC 7983 §7 (updated by RFC 9443
  §2) lays out for one 5-tuple shared by STUN, ZRTP, DTLS, TURN channels, QUIC and
  RTP/RTCP, as WebRTC peers share it: only ``Channel.dtls`` goes on to the DTLS parser.
- :func:`opening` is the cheap test the engine's UDP seam asks of the first datagram of
  a 4-tuple: does it start with a DTLS record (content type 20..26, a DTLS record version,
  a length that fits) or a DTLS 1.3 unified header with a length that fits? A DTLS
  ClientHello (handshake record of epoch 0 whose first fragment is a ClientHello) says
  its sender is the client.

What it does not do: parse records (:mod:`analyzer.dtls.records`) or keep state.
"""

from __future__ import annotations

from enum import Enum, StrEnum

from analyzer.dtls.records import (
    PLAINTEXT_HEADER,
    PLAINTEXT_TYPES,
    RECORD_VERSIONS,
    UNIFIED_BITS,
    UNIFIED_MASK,
)
from analyzer.tls.enums import ContentType, HandshakeType


class Channel(StrEnum):
    """RFC 7983 §7 / RFC 9443 §2 first-byte ranges."""

    stun = "stun"  # 0..3
    zrtp = "zrtp"  # 16..19
    dtls = "dtls"  # 20..63
    turn_channel = "turn_channel"  # 64..79
    quic = "quic"  # 80..127 short header, 192..255 long header (RFC 9443)
    rtp_rtcp = "rtp_rtcp"  # 128..191
    unknown = "unknown"  # 4..15 and an empty datagram


def channel(data: bytes) -> Channel:
    """The protocol a datagram of a multiplexed 5-tuple carries (RFC 7983 §7)."""
    if not data:
        return Channel.unknown
    first = data[0]
    if first <= 3:
        return Channel.stun
    if 16 <= first <= 19:
        return Channel.zrtp
    if 20 <= first <= 63:
        return Channel.dtls
    if 64 <= first <= 79:
        return Channel.turn_channel
    if 128 <= first <= 191:
        return Channel.rtp_rtcp
    if first >= 80:
        return Channel.quic
    return Channel.unknown


class Opening(Enum):
    """What the first DTLS datagram of a 4-tuple shows."""

    CLIENT_HELLO = "client_hello"
    """A ClientHello: its sender is the client, the association starts here."""
    RECORD = "record"
    """Another DTLS record: the capture joined an association already under way."""


_UNIFIED_LENGTH = 0x04
_UNIFIED_CID = 0x10
_UNIFIED_SEQ16 = 0x08


def opening(data: bytes) -> Opening | None:
    """Whether ``data`` starts a DTLS datagram, and whether it is a ClientHello; None when
    it is not DTLS. Reads at most the first record header and one byte after it."""
    if not data:
        return None
    first = data[0]
    if first in PLAINTEXT_TYPES and len(data) < PLAINTEXT_HEADER:
        return None
    if first in PLAINTEXT_TYPES and first != ContentType.tls12_cid:
        if int.from_bytes(data[1:3]) not in RECORD_VERSIONS:
            return None
        if PLAINTEXT_HEADER + int.from_bytes(data[11:13]) > len(data):
            return None
        hello = (
            first == ContentType.handshake
            and data[3:5] == b"\x00\x00"
            and len(data) > PLAINTEXT_HEADER
            and data[PLAINTEXT_HEADER] == HandshakeType.client_hello
        )
        return Opening.CLIENT_HELLO if hello else Opening.RECORD
    if first == ContentType.tls12_cid:
        return Opening.RECORD if int.from_bytes(data[1:3]) in RECORD_VERSIONS else None
    if (
        first & UNIFIED_MASK == UNIFIED_BITS
        and first & _UNIFIED_LENGTH
        and not first & _UNIFIED_CID
    ):
        head = 3 + (2 if first & _UNIFIED_SEQ16 else 1)  # first byte, sequence, length
        fits = len(data) >= head and head + int.from_bytes(data[head - 2 : head]) <= len(data)
        return Opening.RECORD if fits else None
    return None
