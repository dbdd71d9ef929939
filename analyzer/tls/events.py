"""Events the per-direction TLS stream parser returns (facts, no judgement).

The parser (:class:`analyzer.tls.stream.TLSStream`) is fed the reassembled bytes of one
direction of a connection and returns these, in wire order.
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.anomalies import Anomaly
from analyzer.tls.messages import ParsedMessage


@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeMsg:
    """A complete plaintext handshake message (RFC 8446 §4)."""

    msg_type: int
    length: int
    parsed: ParsedMessage | None = None
    """Typed value for ClientHello, ServerHello, Certificate, ServerKeyExchange; None for
    the others, and when the body could not be parsed (an anomaly accompanies it)."""
    records: int = 1
    """How many TLS records the message spanned."""
    decrypted: bool = False
    """It came out of encrypted records, opened with a key log."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EncryptedHandshake:
    """A handshake record after this direction's ChangeCipherSpec (TLS ≤ 1.2 Finished)."""

    length: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeCipherSpec:
    """RFC 5246 §7.1."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    """RFC 8446 §6. Plaintext alerts have level and description; encrypted ones have only
    their record length (``level``/``description`` None), unless a key log opened them
    (``decrypted``)."""

    level: int | None
    description: int | None
    encrypted: bool
    length: int
    decrypted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplicationData:
    """An application_data record (content type 23): opaque; in TLS 1.3 it also carries
    the encrypted handshake and encrypted alerts."""

    length: int
    decrypted: bool = False
    """A key log opened it: what it carried follows as events of their own."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Heartbeat:
    """RFC 6520 heartbeat record."""

    length: int


@dataclass(frozen=True, slots=True, kw_only=True)
class NotTLS:
    """The direction's bytes do not start a TLS record: parsing of it stops.

    ``prefix`` holds the first bytes (at most 64) as evidence, e.g. ``HTTP/1.1 400``.
    """

    prefix: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ParseAnomaly:
    """Something odd the parser skipped or gave up on."""

    anomaly: Anomaly
    detail: str = ""


TLSEvent = (
    HandshakeMsg
    | EncryptedHandshake
    | ChangeCipherSpec
    | Alert
    | ApplicationData
    | Heartbeat
    | NotTLS
    | ParseAnomaly
)
