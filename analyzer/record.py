"""The handshake record: one per TLS-relevant TCP connection (SPEC §3).

Field names are the product contract for JSONL, CSV, Parquet and the DataFrame. The
engine fills the facts; :mod:`analyzer.diagnosis` fills the judgement (``outcome``,
``failure``, ``failure_side``, ``reason``, ``remedy``, ``inferred``, ``cert_status``,
``warnings``) with :func:`evolve` (:func:`dataclasses.replace`, three times faster).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, fields
from operator import attrgetter
from typing import Any, Literal, TypeVar

from analyzer.decode.icmp import UNREACHABLE_NAMES

Side = Literal["client", "server"]

OUTCOMES = ("established", "failed", "incomplete", "not_tls")
FAILURES = (
    "version_mismatch",
    "cipher_mismatch",
    "certificate_expired",
    "certificate_untrusted",
    "certificate_invalid",
    "sni_mismatch",
    "client_certificate_required",
    "alpn_mismatch",
    "proxy_error",
    "not_tls",
    "tcp_refused",
    "tcp_no_answer",
    "udp_refused",
    "udp_no_answer",
    "reset_during_handshake",
    "no_server_response",
    "handshake_aborted",
    "protocol_error",
    "other_alert",
)
FAILURE_SIDES = ("client", "server", "proxy", "network")
STAGES = (
    "tcp_syn",
    "tcp_open",
    "client_hello",
    "server_hello",
    "server_certificate",
    "server_done",
    "client_finished",
    "established",
    "application_data",
)
CLOSES = (
    "fin",
    "rst_client",
    "rst_server",
    "connection_close",
    "idle_timeout",
    "capture_end",
    "open",
)
VERSIONS = (
    "SSLv2",
    "SSLv3",
    "TLSv1.0",
    "TLSv1.1",
    "TLSv1.2",
    "TLSv1.3",
    "DTLSv0.9",
    "DTLSv1.0",
    "DTLSv1.2",
    "DTLSv1.3",
)
TRANSPORTS = ("tcp", "quic", "dtls")
PROXY_KINDS = ("http_connect", "socks4", "socks4a", "socks5")
CERT_TRUSTS = ("certifi", "ca_bundle", "clients")
DIRECTIONS = ("client", "server")
CERT_STATUSES = (
    "ok",
    "expired",
    "not_yet_valid",
    "hostname_mismatch",
    "self_signed",
    "incomplete_chain",
    "untrusted",
)
"""SPEC §3 order: problems every client sees before those that depend on whose trust store
is asked."""
STARTTLS = ("smtp", "imap", "pop3", "ftp", "xmpp", "irc", "ldap", "postgres")
ICMP_ERRORS: tuple[str, ...] = UNREACHABLE_NAMES
"""Values of ``icmp_error`` (ICMPv4 and ICMPv6 codes share these words)."""

_C = TypeVar("_C", bound=type)


def _tuple_state(cls: _C) -> _C:
    """Pickle a frozen slots dataclass as the tuple of its field values: the dataclass
    default walks ``fields()`` for every object, which made spilling records to disk
    (:mod:`analyzer.sorted_records`) cost more than analysing them."""
    names = tuple(f.name for f in fields(cls))
    get = attrgetter(*names)  # a tuple of values: every class here has several fields
    assert len(names) > 1, cls
    set_field = object.__setattr__

    def getstate(self: Any) -> tuple[Any, ...]:
        return get(self)

    def setstate(self: Any, state: tuple[Any, ...]) -> None:
        for name, value in zip(names, state, strict=True):
            set_field(self, name, value)

    setattr(cls, "__getstate__", getstate)  # noqa: B010 - mypy will not see a method assigned
    setattr(cls, "__setstate__", setstate)  # noqa: B010
    return cls


@_tuple_state
@dataclass(frozen=True, slots=True, kw_only=True)
class AlertInfo:
    """One alert seen on the connection."""

    sender: Side
    """``from`` in outputs (a Python keyword)."""
    level: str | None
    """``warning`` or ``fatal``; None when encrypted (or an unknown level code)."""
    description: str | None
    """IANA name such as ``handshake_failure``; None when encrypted."""
    code: int | None
    encrypted: bool
    ts: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.sender,
            "level": self.level,
            "description": self.description,
            "code": self.code,
            "encrypted": self.encrypted,
        }


@_tuple_state
@dataclass(frozen=True, slots=True, kw_only=True)
class TimelineEntry:
    """One step of the connection, for ``tlsa show``: seconds since the first packet."""

    t: float
    sender: Literal["client", "server", "-"]
    what: str


@_tuple_state
@dataclass(frozen=True, slots=True, kw_only=True)
class HandshakeRecord:
    """Everything known about one TLS-relevant TCP connection (SPEC §3)."""

    uid: str
    """Stable id: short hash of capture, 4-tuple and first packet time."""
    capture: str
    """Source file's base name, or the interface for live capture."""
    ts: float
    """First packet of the connection (seconds since the epoch)."""
    ts_end: float
    """Last packet of the connection."""
    client_ip: str
    client_port: int
    server_ip: str
    server_port: int
    transport: str = "tcp"
    """``tcp``, ``quic`` or ``dtls``."""
    quic_version: str | None = None
    """QUIC only: ``v1``, ``v2``, ``draft-29``, ... or ``0xNNNNNNNN``."""
    proxy_kind: str | None = None
    """``http_connect``, ``socks4``, ``socks4a`` or ``socks5`` when the TLS runs inside a
    proxy tunnel."""
    proxy_target: str | None = None
    """``host:port`` the client asked the proxy for."""
    proxy_status: int | None = None
    """The proxy's answer: the HTTP status for CONNECT, the SOCKS reply code."""
    starttls: str | None = None
    """``smtp``, ``imap``, ... when TLS started inside a plaintext protocol."""
    sni: str | None = None
    offered_versions: list[str] = field(default_factory=list)
    version: str | None = None
    offered_ciphers: list[str] = field(default_factory=list)
    cipher: str | None = None
    group: str | None = None
    alpn_offered: list[str] = field(default_factory=list)
    alpn: str | None = None
    resumed: bool = False
    hrr: bool = False
    quic_history: str | None = None
    """QUIC only: Zeek's quic.log ``history``."""
    history: str = ""
    """Zeek's ``ssl_history`` letters."""
    stage: str = "tcp_syn"
    established: bool = False
    alerts: list[AlertInfo] = field(default_factory=list)
    last_alert: str | None = None
    cert_subject: str | None = None
    cert_issuer: str | None = None
    cert_sans: list[str] = field(default_factory=list)
    cert_not_before: float | None = None
    cert_not_after: float | None = None
    cert_chain_sha256: list[str] = field(default_factory=list)
    cert_status: str | None = None
    cert_trust: str | None = None
    """Whose trust store judged ``cert_status``: ``certifi``, ``ca_bundle`` (``--ca-bundle``),
    ``clients`` (clients in this capture completed handshakes with this chain), or None when
    not judged."""
    sni_matches_cert: bool | None = None
    decrypted: list[str] = field(default_factory=list)
    """Directions (``client``, ``server``) whose encrypted handshake was decrypted with a
    key log."""
    wireshark_filter: str = ""
    """A Wireshark display filter selecting exactly this connection's packets in its
    capture (:func:`analyzer.display_filter.display_filter`)."""
    ja3: str | None = None
    ja3s: str | None = None
    ja4: str | None = None
    close: str = "capture_end"
    client_bytes: int = 0
    server_bytes: int = 0
    packets: int = 0
    tcp_rtt: float | None = None
    handshake_time: float | None = None
    retransmits: int = 0
    gap_bytes: int = 0
    outcome: str = "incomplete"
    failure: str | None = None
    failure_side: str | None = None
    reason: str | None = None
    remedy: str | None = None
    inferred: bool = False
    warnings: list[str] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)

    # Extra facts (SPEC §3 welcomes extra fields). Written to outputs too, except those
    # listed in INTERNAL_FIELDS.
    ja3_string: str | None = None
    ja3s_string: str | None = None
    offered_groups: list[str] = field(default_factory=list)
    offered_sigalgs: list[str] = field(default_factory=list)
    key_share_groups: list[str] = field(default_factory=list)
    cert_problems: list[str] = field(default_factory=list)
    """Every problem of the leaf, in ``cert_status`` order (``cert_status`` is the first)."""
    cert_key: str | None = None
    """Leaf public key, e.g. ``RSA-2048``, ``EC-256``."""
    cert_signature_hash: str | None = None
    cert_self_issued: bool | None = None
    cert_error: str | None = None
    client_hello_segments: int = 0
    """TCP segments the (first) ClientHello spanned."""
    client_certificates: int | None = None
    """Certificates in the client's Certificate message (0: it sent an empty one), or
    None when it sent none that was visible."""
    client_data: bool = False
    """The client sent application data after the handshake (TLS 1.3 without keys: a record
    longer than an alert after its Finished): it accepted the server."""
    client_cert_requested: bool = False
    """The server asked for a client certificate (a CertificateRequest, in plaintext or
    decrypted with a key log)."""
    client_random: str | None = None
    """The (first) ClientHello's 32-byte random in hex: the key a key log files this
    connection's secrets under (public, never a secret itself)."""
    server_unacked_bytes: int = 0
    """Server bytes the client never acknowledged by the end of the handshake (a server
    flight lost on the way, e.g. an MTU black hole)."""
    client_hello_acked: bool = False
    """The server's TCP acknowledged the whole first ClientHello."""
    syn_count: int = 0
    """SYNs sent by the client (retransmissions included)."""
    synack: bool = False
    icmp_error: str | None = None
    """The first ICMP destination-unreachable error about a packet of this connection
    (either side's): ``port_unreachable``, ``host_unreachable``, ``net_unreachable``,
    ``admin_prohibited``, ... (:data:`ICMP_ERRORS`); the timeline has the exact code."""
    icmp_from: str | None = None
    """Who sent that error: the server itself, or a router or firewall on the path."""
    icmp_mtu: int | None = None
    """The next hop's MTU that error reported (``fragmentation_needed``: ICMPv4
    fragmentation needed, ICMPv6 Packet Too Big)."""
    ts_client_hello: float | None = None
    ts_server_hello: float | None = None
    ts_close: float | None = None
    """Time of the FIN or RST that closed the connection (first one; QUIC: of the first
    CONNECTION_CLOSE)."""
    ts_client_fin: float | None = None
    """Time of the client's first FIN (a later RST may have closed the connection)."""
    client_max_datagram: int | None = None
    """QUIC and DTLS: the largest UDP payload the client sent (with the path MTU, whether
    its flights needed fragmenting)."""
    server_max_datagram: int | None = None
    """QUIC and DTLS: the largest UDP payload the server sent."""
    dtls_cookie_length: int | None = None
    """DTLS: the cookie length of the server's HelloVerifyRequest (RFC 6347 §4.2.1), null
    when the server sent none."""
    dtls_cookie_echoed: bool | None = None
    """DTLS: whether the client sent a ClientHello carrying a cookie (null for other
    transports)."""
    dtls_client_datagrams: int | None = None
    """DTLS: datagrams the client sent."""
    dtls_server_datagrams: int | None = None
    """DTLS: datagrams the server sent."""
    dtls_client_incomplete: int | None = None
    """DTLS: the client's plaintext handshake messages that never arrived whole (fragments
    missing, or a message_seq skipped): its datagrams were lost before the capture point."""
    dtls_server_incomplete: int | None = None
    """DTLS: the server's plaintext handshake messages that never arrived whole."""
    quic_close_code: int | None = None
    """QUIC: the error code of the first CONNECTION_CLOSE that was visible (an Initial, or a
    Handshake packet decrypted with a key log): a transport error (RFC 9000 §20.1; 0x0100-
    0x01ff carry a TLS alert, which ``alerts`` holds too) or, with
    ``quic_close_application``, the application's (HTTP/3) code. ``close_by`` says who sent
    it, ``ts_close`` when."""
    quic_close_application: bool = False
    """That CONNECTION_CLOSE was of type 0x1d (an application error)."""
    quic_close_reason: str | None = None
    """Its reason phrase, printable text only."""
    quic_server_versions: list[str] = field(default_factory=list)
    """QUIC: the versions a server's Version Negotiation packet offered instead of the
    client's (``v1``, ``v2``, ``0xNNNNNNNN``)."""
    quic_client_handshake_packets: int = 0
    """QUIC: Handshake packets the client sent (encrypted, counted with or without keys)."""
    quic_server_handshake_packets: int = 0
    quic_client_one_rtt_packets: int = 0
    """QUIC: 1-RTT (short header) packets the client sent."""
    close_by: str | None = None
    """``client`` or ``server``: who sent the first FIN or RST (QUIC: the first
    CONNECTION_CLOSE)."""
    client_retransmits: int = 0
    server_retransmits: int = 0
    server_first_bytes: str | None = None
    """Evidence when the server answered with something that is not TLS (e.g. an HTTP
    status line), printable text only."""
    client_first_bytes: str | None = None
    """Evidence when the client sent something that is not TLS."""
    proxy_status_line: str | None = None
    client_encrypted_after_server_flight: list[int] = field(default_factory=list)
    """TLS 1.3: sizes of the client's encrypted records after the server's flight (the
    evidence behind ``established`` and inferred rejections)."""
    server_encrypted_after_client_flight: list[int] = field(default_factory=list)
    """TLS 1.3: sizes of the server's encrypted records after the client's flight."""
    capture_end: float | None = None
    """Last packet time of the whole capture (for the ``incomplete`` rule)."""
    timeline: list[TimelineEntry] = field(default_factory=list)
    cert_chain: tuple[bytes, ...] = field(default=(), repr=False)
    """DER certificates the server sent (not written to outputs)."""

    def to_dict(self) -> dict[str, Any]:
        """The record as plain JSON-ready values (SPEC §3 names; internal fields left out)."""
        out = dict(zip(RECORD_FIELDS, _record_values(self), strict=True))
        out["alerts"] = [a.as_dict() for a in self.alerts]
        out["timeline"] = [[round(e.t, 6), e.sender, e.what] for e in self.timeline]
        for name in _LIST_FIELDS:
            out[name] = list(out[name])
        return out


INTERNAL_FIELDS = frozenset({"cert_chain"})
RECORD_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(HandshakeRecord) if f.name not in INTERNAL_FIELDS
)
"""Output column order."""
_record_values = attrgetter(*RECORD_FIELDS)
_ALL_FIELDS = tuple(f.name for f in fields(HandshakeRecord))
_all_values = attrgetter(*_ALL_FIELDS)


def _slot_setters(cls: type) -> dict[str, Callable[[Any, Any], None]]:
    """Each field's slot setter (the member descriptor's ``__set__``), in field order: it
    sets a frozen slotted dataclass's field without ``__init__`` or ``__setattr__``."""
    return {f.name: getattr(cls, f.name).__set__ for f in fields(cls)}


_SLOT_SETTERS = _slot_setters(HandshakeRecord)
_SETTERS_IN_ORDER = tuple(_SLOT_SETTERS.values())


def evolve(record: HandshakeRecord, **changes: Any) -> HandshakeRecord:
    """A copy of ``record`` with ``changes``, as :func:`dataclasses.replace` makes it but
    without calling ``__init__`` (which sets 112 frozen fields one by one: 30 µs, on
    every record, more than once): the slots are copied, then the changes set (10 µs).
    An unknown field name raises :class:`TypeError`, as there."""
    out = object.__new__(HandshakeRecord)
    for set_slot, value in zip(_SETTERS_IN_ORDER, _all_values(record), strict=True):
        set_slot(out, value)
    for name, value in changes.items():
        setter = _SLOT_SETTERS.get(name)
        if setter is None:
            raise TypeError(f"HandshakeRecord has no field {name!r}")
        setter(out, value)
    return out


TIMELINE_SETTERS = tuple(_slot_setters(TimelineEntry).values())
"""The slot setters of :class:`TimelineEntry` (``t``, ``sender``, ``what``), for
:meth:`analyzer.handshake.core.HandshakeCore.note`, which makes one per step of every
connection without the frozen dataclass's ``__init__``."""


NO_VALUE: Any = object()
"""A value not given; in ``FIELD_PLAN``, the default of a field that has none."""
FIELD_PLAN: tuple[tuple[str, Callable[[Any, Any], None], Any, Callable[[], Any] | None], ...] = (
    tuple(
        (
            f.name,
            _SLOT_SETTERS[f.name],
            NO_VALUE if f.default is MISSING else f.default,
            None if f.default_factory is MISSING else f.default_factory,
        )
        for f in fields(HandshakeRecord)
    )
)
"""Per field in order: name, slot setter, default (or ``NO_VALUE``), default factory (for
:func:`analyzer.handshake.build.new_record`, which builds records without ``__init__``)."""


_LIST_FIELDS = tuple(
    f.name
    for f in fields(HandshakeRecord)
    if f.default_factory is list
    and f.name in RECORD_FIELDS
    and f.name not in ("alerts", "timeline")
)
"""Fields whose lists ``to_dict`` copies (the record's own stay untouched)."""
