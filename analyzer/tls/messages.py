"""Typed values of the TLS wire format that the rest of the tool reads.

These are produced by the parsers in :mod:`analyzer.tls` and consumed by the engine and
by :mod:`analyzer.fingerprints`. Unknown codes stay plain ``int``s. Every extension is kept
raw and in wire order (fingerprints need the order and GREASE values); the ones we use
also become typed fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from analyzer.anomalies import Anomaly


@dataclass(frozen=True, slots=True, kw_only=True)
class Extension:
    """One extension as it appeared on the wire (RFC 8446 §4.2)."""

    type: int
    data: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientHello:
    """RFC 8446 §4.1.2 / RFC 5246 §7.4.1.2 ClientHello (or an SSLv2-compatible one)."""

    legacy_version: int
    """``client_version``/``legacy_version`` field (0x0303 for TLS 1.2 and 1.3)."""
    random: bytes
    session_id: bytes
    cipher_suites: tuple[int, ...]
    """Wire order, GREASE included. For SSLv2 hellos, only the 2-byte-expressible suites."""
    compression_methods: bytes
    extensions: tuple[Extension, ...]
    """Wire order, GREASE included; empty for SSLv2 hellos and extension-less hellos."""
    sni: str | None = None
    """First host_name of server_name (RFC 6066 §3), decoded as ASCII/IDNA text."""
    supported_versions: tuple[int, ...] = ()
    """RFC 8446 §4.2.1, wire order, GREASE included."""
    supported_groups: tuple[int, ...] = ()
    """RFC 8446 §4.2.7 (elliptic_curves in older RFCs), wire order, GREASE included."""
    ec_point_formats: tuple[int, ...] = ()
    key_share_groups: tuple[int, ...] = ()
    """Groups of the key_share entries (RFC 8446 §4.2.8), wire order."""
    signature_algorithms: tuple[int, ...] = ()
    """RFC 8446 §4.2.3, wire order."""
    alpn: tuple[bytes, ...] = ()
    """RFC 7301 protocol names, wire order."""
    session_ticket: bool = False
    """A non-empty session_ticket extension (RFC 5077): the client tries to resume."""
    psk: bool = False
    """pre_shared_key present (RFC 8446 §4.2.11): the client tries to resume."""
    ech: bool = False
    """encrypted_client_hello present (real or GREASE)."""
    sslv2: bool = False
    """Sent in the SSLv2-compatible format (RFC 6101 E.1 / RFC 5246 E.2)."""
    cookie: bytes | None = None
    """DTLS only (RFC 6347 §4.2.1): the cookie field after the session id, empty in a
    first ClientHello, echoing the HelloVerifyRequest's in the second; None for TLS."""
    anomalies: tuple[Anomaly, ...] = ()
    """Problems the parser stepped over while keeping the message (a malformed or
    duplicate extension, trailing bytes); the stream also reports each as a ParseAnomaly."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HelloVerifyRequest:
    """RFC 6347 §4.2.1 HelloVerifyRequest (DTLS ≤ 1.2): the server asks the client to
    send its ClientHello again with this cookie, proving it receives at its address."""

    server_version: int
    cookie: bytes
    anomalies: tuple[Anomaly, ...] = ()
    """Always empty: a HelloVerifyRequest either parses whole or is an anomaly."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerHello:
    """RFC 8446 §4.1.3 ServerHello, including HelloRetryRequest."""

    legacy_version: int
    random: bytes
    session_id: bytes
    cipher_suite: int
    compression_method: int
    extensions: tuple[Extension, ...]
    selected_version: int | None = None
    """supported_versions extension (RFC 8446 §4.2.1), when present."""
    key_share_group: int | None = None
    """key_share group (the selected_group for a HelloRetryRequest)."""
    alpn: bytes | None = None
    is_hrr: bool = False
    """Random equals SHA-256("HelloRetryRequest") (RFC 8446 §4.1.3)."""
    anomalies: tuple[Anomaly, ...] = ()
    """Problems the parser stepped over while keeping the message (a malformed or
    duplicate extension, trailing bytes); the stream also reports each as a ParseAnomaly."""

    @property
    def version(self) -> int:
        """The negotiated version: supported_versions if present, else legacy_version."""
        return self.selected_version if self.selected_version is not None else self.legacy_version


@dataclass(frozen=True, slots=True, kw_only=True)
class CertificateChain:
    """RFC 5246 §7.4.2 Certificate: DER certificates, leaf first."""

    certificates: tuple[bytes, ...]
    anomalies: tuple[Anomaly, ...] = ()
    """E.g. ``chain_too_long`` when certificates beyond the limit were dropped."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerKeyExchange:
    """RFC 8422 §5.4 ServerKeyExchange: only the curve is of interest."""

    named_curve: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class EncryptedExtensions:
    """RFC 8446 §4.3.1 EncryptedExtensions (TLS 1.3, seen only when decrypted): the
    server's extensions that are not in its ServerHello, ALPN among them."""

    extensions: tuple[Extension, ...]
    alpn: bytes | None = None
    """The protocol the server selected (RFC 7301 §3.1)."""
    anomalies: tuple[Anomaly, ...] = ()


ParsedMessage = (
    ClientHello
    | ServerHello
    | CertificateChain
    | ServerKeyExchange
    | HelloVerifyRequest
    | EncryptedExtensions
)
