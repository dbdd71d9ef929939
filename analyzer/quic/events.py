"""What the QUIC connection parser reports: events as packets come, facts at the end.

:meth:`analyzer.quic.parser.QuicConnectionParser.datagram` returns, for one datagram of
one side, a list of these QUIC events mixed with the TLS layer's own events
(:class:`~analyzer.tls.events.HandshakeMsg` for each handshake message of the CRYPTO
streams, :class:`~analyzer.tls.events.Alert` for a CONNECTION_CLOSE carrying a TLS alert,
:class:`~analyzer.tls.events.ParseAnomaly` for anything odd), in wire order. Every event of
one call is about the side that sent the datagram. :class:`QuicFacts` is the summary the
record is filled from.

Facts, no judgement: nothing here says whether a handshake failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.quic.versions import PacketType
from analyzer.tls.events import Alert, HandshakeMsg, ParseAnomaly

CRYPTO_ERROR_FIRST = 0x0100
CRYPTO_ERROR_LAST = 0x01FF
"""RFC 9001 §4.8: transport error codes 0x0100-0x01ff carry a TLS alert, ``code - 0x100``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PacketSeen:
    """One QUIC packet: every long-header packet, and the first 1-RTT packet of each side
    (later ones are only counted)."""

    type: PacketType
    version: int | None
    """None for short headers (they carry no version)."""
    dcid: bytes
    scid: bytes | None
    """None for short headers."""
    length: int
    """Bytes of the packet on the wire."""
    packet_number: int | None = None
    """Known once its protection was removed."""
    decrypted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class VersionNegotiation:
    """RFC 9000 §6: the server does not speak the client's version; these are its own."""

    versions: tuple[int, ...]
    """Wire order, at most ``MAX_QUIC_VERSIONS``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownVersion:
    """A long header of a version this package cannot read (its packets are counted)."""

    version: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Retry:
    """RFC 9000 §8.1.2: the server asks the client to prove its address first."""

    scid: bytes
    """The server's new connection ID: the client's next DCID, and its Initial keys."""
    token_length: int
    tag_valid: bool | None
    """The integrity tag checks out against the client's original DCID (RFC 9001 §5.8);
    None when the version has no tag or no client Initial was seen to check it against.
    A Retry whose tag is wrong changes nothing (a client discards it too)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClose:
    """RFC 9000 §19.19, from a packet whose protection was removed (a CONNECTION_CLOSE in
    a packet that does not authenticate is never reported)."""

    from_client: bool
    error_code: int
    frame_type: int | None
    """The frame type that triggered the error (0 when unknown); None for 0x1d."""
    reason: str
    """The reason phrase, decoded as UTF-8 with replacement, at most ``MAX_QUIC_REASON``
    bytes of it."""
    application: bool
    """An application error (frame type 0x1d): the code is HTTP/3's or the app's."""
    packet_type: PacketType
    """Initial (visible to anyone) or Handshake (decrypted with a key log)."""

    @property
    def tls_alert(self) -> int | None:
        """The TLS alert description of a CRYPTO_ERROR (RFC 9001 §4.8), else None."""
        if not self.application and CRYPTO_ERROR_FIRST <= self.error_code <= CRYPTO_ERROR_LAST:
            return self.error_code - CRYPTO_ERROR_FIRST
        return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Decrypted:
    """This side's first Handshake packet was decrypted with an installed secret."""

    packet_type: PacketType


QuicEvent = (
    PacketSeen
    | VersionNegotiation
    | UnknownVersion
    | Retry
    | ConnectionClose
    | Decrypted
    | HandshakeMsg
    | Alert
    | ParseAnomaly
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PacketCounts:
    """Packets one side sent, by type."""

    initial: int = 0
    zero_rtt: int = 0
    handshake: int = 0
    one_rtt: int = 0
    retry: int = 0
    version_negotiation: int = 0
    unknown_version: int = 0
    undecryptable: int = 0
    """Initial (or keyed Handshake) packets whose protection could not be removed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class QuicFacts:
    """Everything the record needs from one QUIC connection, at any moment."""

    version: int | None
    """The version in use: the server's last long header's, else the client's."""
    version_name: str | None
    """``v1``, ``v2``, ``draft-29``, … or ``0xNNNNNNNN`` (SPEC ``quic_version``)."""
    offered_versions: tuple[int, ...]
    """From a Version Negotiation packet; empty without one."""
    client_initial_dcid: bytes | None
    """The client's first Destination Connection ID (the Initial keys come from it)."""
    client_scid: bytes | None
    server_scid: bytes | None
    history: str
    """Zeek's quic.log ``history`` (all its rows for this connection, joined)."""
    history_rows: tuple[str, ...]
    client: PacketCounts
    server: PacketCounts
    client_initial_repeats: int
    """Datagrams with a client Initial sent after the first while the server had sent
    nothing, that brought no CRYPTO data beyond what earlier ones carried (the second part
    of a ClientHello longer than one datagram is no repeat): the client repeating itself
    into silence."""
    retry: Retry | None
    closes: tuple[ConnectionClose, ...]
    """The first CONNECTION_CLOSE of each side that sent one, in the order seen."""
    decrypted: tuple[str, ...]
    """``client``/``server``: sides whose Handshake packets were decrypted."""
