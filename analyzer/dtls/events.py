"""What a DTLS association reports besides the TLS events: one event and its facts.

The association parser (:mod:`analyzer.dtls.parser`) returns the TLS events of
:mod:`analyzer.tls.events` and :class:`Retransmission`; at any time its
:meth:`~analyzer.dtls.parser.DTLSAssociation.facts` give :class:`DTLSFacts`, the numbers a
handshake record needs and TLS over TCP does not have (RFC 6347 §4.1, §4.2.1, §4.2.4).
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.tls.events import TLSEvent


@dataclass(frozen=True, slots=True, kw_only=True)
class Retransmission:
    """Part of one datagram repeated what its sender had already sent (RFC 6347 §4.2.4:
    a flight resent on timeout): handshake fragments, ChangeCipherSpec, encrypted Finished.
    The repeated messages are not emitted again."""

    items: int
    """Handshake fragments and records repeated in this datagram."""
    length: int
    """Their bytes (fragment headers and bodies, record bodies)."""
    repeated: tuple[int, ...] = ()
    """What was repeated whole, in wire order: the handshake type of each message resent
    in one fragment, :data:`REPEATED_CCS` for a ChangeCipherSpec. Zeek's DTLS analyzer
    hands such messages to its handshake parser again, so they count in ``ssl_history``
    again; fragments of a resent message that was cut up do not."""


REPEATED_CCS = -1
"""A ChangeCipherSpec in :attr:`Retransmission.repeated` (the handshake machine's ``CCS``
step)."""


DTLSEvent = TLSEvent | Retransmission


@dataclass(frozen=True, slots=True, kw_only=True)
class SideFacts:
    """What one side of an association sent."""

    datagrams: int = 0
    bytes: int = 0
    """UDP payload bytes."""
    largest_datagram: int = 0
    """The largest UDP payload: with the path MTU, whether flights needed fragmenting."""
    first_ts: float | None = None
    last_ts: float | None = None
    records: int = 0
    flights_resent: int = 0
    """Flights sent again, each counted once however many datagrams it took."""
    items_resent: int = 0
    bytes_resent: int = 0
    duplicates: int = 0
    """Records received twice with the same epoch and sequence number (a duplicated
    datagram, not a retransmission: those carry new sequence numbers)."""
    dtls13_records: int = 0
    """DTLS 1.3 unified-header records (RFC 9147 §4)."""
    legacy_records: int = 0
    """Records of version 0x0100, OpenConnect/AnyConnect's pre-standard DTLS."""
    cid_records: int = 0
    """DTLS 1.2 connection-ID records (RFC 9146)."""
    non_dtls: int = 0
    """Datagrams of another protocol on the same 5-tuple (STUN, RTP, ... RFC 7983)."""
    incomplete_messages: int = 0
    """Plaintext handshake messages that never arrived whole: fragments missing, or a
    message_seq skipped (RFC 6347 §4.2.2): datagrams of this side's flights were lost
    before the capture point."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DTLSFacts:
    """One association's DTLS facts (the engine reads them into its record)."""

    client: SideFacts
    server: SideFacts
    hello_verify_cookie: int | None = None
    """Length of the cookie of the server's HelloVerifyRequest, None without one."""
    cookie_echoed: bool = False
    """The client sent a ClientHello carrying a non-empty cookie."""
    channels: tuple[str, ...] = ()
    """Other protocols seen on the 5-tuple (RFC 7983 names), in order of first sight."""
