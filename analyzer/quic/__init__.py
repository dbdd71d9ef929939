"""QUIC, sans-IO: Initial packets read without keys, the TLS handshake in their CRYPTO frames.

The engine's UDP seam (:mod:`analyzer.engine.udp`) asks :func:`peek_long_header` (version
and connection IDs of a datagram's first packet, no crypto) and :func:`short_header_dcid`,
and creates one :class:`analyzer.quic.connection.QuicConnection` per connection: the
transport adapter that owns a :class:`QuicConnectionParser`, feeds it each datagram with
its direction, passes the TLS events it returns (``HandshakeMsg``, ``Alert``) to the
handshake core, installs handshake secrets from a key log
(:meth:`QuicConnectionParser.install_handshake_secret`) and reads
:meth:`QuicConnectionParser.facts` into the record.

RFCs: 8999 (invariants), 9000 (transport), 9001 (QUIC-TLS), 9369 (QUIC v2).
"""

from analyzer.quic.events import (
    ConnectionClose,
    Decrypted,
    PacketCounts,
    PacketSeen,
    QuicEvent,
    QuicFacts,
    Retry,
    UnknownVersion,
    VersionNegotiation,
)
from analyzer.quic.packet import LongHeaderIds, peek_long_header, short_header_dcid
from analyzer.quic.parser import QuicConnectionParser
from analyzer.quic.versions import VERSIONS, PacketType, is_reserved_version, version_name

__all__ = [
    "VERSIONS",
    "ConnectionClose",
    "Decrypted",
    "LongHeaderIds",
    "PacketCounts",
    "PacketSeen",
    "PacketType",
    "QuicConnectionParser",
    "QuicEvent",
    "QuicFacts",
    "Retry",
    "UnknownVersion",
    "VersionNegotiation",
    "is_reserved_version",
    "peek_long_header",
    "short_header_dcid",
    "version_name",
]
