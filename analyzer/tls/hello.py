"""ClientHello, ServerHello and their extensions, from the body of a handshake message.

What it does: ``parse_client_hello`` (TLS, or DTLS with its cookie),
``parse_server_hello`` (HelloRetryRequest included, told apart by its special random, RFC
8446 §4.1.3), ``parse_hello_retry_request`` (the separate message type 6 of TLS 1.3
drafts ≤ 21), ``parse_sslv2_client_hello`` (RFC 5246 E.2), ``parse_hello_verify_request``
(DTLS, RFC 6347 §4.2.1), and one ``parse_*`` per extension we read, named after its RFC
structure. Every extension also stays raw, in wire order, GREASE included.

How problems are reported: every public ``parse_*`` returns its value or a
:class:`ParseAnomaly`, never raises. A malformed or duplicated extension does not lose
the hello: its typed field stays empty (the first copy wins for duplicates) and the code
goes into the hello's ``anomalies``. Only broken fixed fields (version, random, session
id, cipher suites, compression) make a whole hello a ``ParseAnomaly``.

What it does not do: judge (a ServerHello version outside the client's offer is the
engine's business), names (see :mod:`analyzer.tls.names`), or decrypt anything.

RFCs: 8446 §4.1.2-4.1.4, §4.2.1 (supported_versions), §4.2.3 (signature_algorithms),
§4.2.7 (supported_groups), §4.2.8 (key_share), §4.2.11 (pre_shared_key); 5246 §7.4.1,
E.2; 6066 §3 (server_name); 7301 (ALPN); 8422 §5.1.2 (ec_point_formats); 5077
(session_ticket); draft-ietf-tls-esni (encrypted_client_hello); 6347 §4.2.1 and 9147
§5.3 (the DTLS ClientHello cookie, HelloVerifyRequest).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from analyzer.anomalies import Anomaly
from analyzer.limits import MAX_INTERNED, MAX_INTERNED_LENGTH
from analyzer.tls.cursor import Cursor, Leftover, Malformed, Truncated, total
from analyzer.tls.enums import ExtensionType, HandshakeType, NameType, ProtocolVersion
from analyzer.tls.events import ParseAnomaly
from analyzer.tls.messages import (
    ClientHello,
    EncryptedExtensions,
    Extension,
    HelloVerifyRequest,
    ServerHello,
)

HRR_RANDOM: Final = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
)
"""SHA-256("HelloRetryRequest"): the random of a HelloRetryRequest (RFC 8446 §4.1.3)."""

MAX_SESSION_ID: Final = 32
"""RFC 5246 §7.4.1.2: ``SessionID session_id<0..32>``."""


# --- extension bodies (RFC structure -> value); readers raise Malformed -------------


def _server_name(cur: Cursor) -> str | None:
    """RFC 6066 §3 ServerNameList: the first host_name, as sent (no trailing-dot trim)."""
    host: str | None = None
    count = 0
    with cur.vector(2) as names:
        while not names.at_end:
            name_type = names.u8()
            name = names.opaque(2)
            count += 1
            if name_type == NameType.host_name and host is None:
                if not name:
                    raise Malformed("server_name: empty host_name")
                host = name.decode("ascii", "backslashreplace")
    if not count:
        raise Malformed("server_name: empty list")
    return host


def _supported_versions(cur: Cursor) -> tuple[int, ...]:
    """RFC 8446 §4.2.1, ClientHello form: ``ProtocolVersion versions<2..254>``."""
    return cur.uint_list(1, 2)


def _selected_version(cur: Cursor) -> int:
    """RFC 8446 §4.2.1, ServerHello/HelloRetryRequest form: ``selected_version``."""
    return cur.u16()


def _supported_groups(cur: Cursor) -> tuple[int, ...]:
    """RFC 8446 §4.2.7 ``NamedGroup named_group_list<2..2^16-1>``."""
    return cur.uint_list(2, 2)


def _ec_point_formats(cur: Cursor) -> tuple[int, ...]:
    """RFC 8422 §5.1.2 ``ECPointFormat ec_point_format_list<1..2^8-1>``."""
    return cur.uint_list(1, 1)


def _signature_algorithms(cur: Cursor) -> tuple[int, ...]:
    """RFC 8446 §4.2.3 ``SignatureScheme supported_signature_algorithms<2..2^16-2>``."""
    return cur.uint_list(2, 2)


def _key_share_entry(cur: Cursor) -> int:
    """RFC 8446 §4.2.8 KeyShareEntry: the group (the key itself is not kept)."""
    group = cur.u16()
    cur.opaque(2)
    return group


def _key_share_client_hello(cur: Cursor) -> tuple[int, ...]:
    """RFC 8446 §4.2.8 KeyShareClientHello: the groups of ``client_shares``."""
    groups: list[int] = []
    with cur.vector(2) as shares:
        while not shares.at_end:
            groups.append(_key_share_entry(shares))
    return tuple(groups)


def _key_share_hello_retry_request(cur: Cursor) -> int:
    """RFC 8446 §4.2.8 KeyShareHelloRetryRequest: ``selected_group``."""
    return cur.u16()


def _alpn(cur: Cursor) -> tuple[bytes, ...]:
    """RFC 7301 §3.1 ProtocolNameList: ``ProtocolName protocol_name_list<2..2^16-1>``."""
    protocols: list[bytes] = []
    with cur.vector(2) as names:
        while not names.at_end:
            name = names.opaque(1)
            if not name:
                raise Malformed("ALPN: empty protocol name")
            protocols.append(name)
    return tuple(protocols)


def _alpn_selected(cur: Cursor) -> bytes:
    """RFC 7301 §3.1: the server's list holds exactly one protocol."""
    protocols = _alpn(cur)
    if len(protocols) != 1:
        raise Malformed(f"ALPN: server selected {len(protocols)} protocols")
    return protocols[0]


def _session_ticket(cur: Cursor) -> bool:
    """RFC 5077 §3.2: a non-empty ticket means the client tries to resume."""
    return bool(cur.rest())


def _present(cur: Cursor) -> bool:
    """Extensions whose presence is the fact (pre_shared_key, encrypted_client_hello)."""
    cur.rest()
    return True


# --- public extension parsers -------------------------------------------------------


def parse_server_name(data: bytes) -> str | ParseAnomaly | None:
    """server_name (RFC 6066 §3): the first host_name, or None if the list has none."""
    return total(_server_name, data, "server_name", Anomaly.MALFORMED_EXTENSION)


def parse_supported_versions(data: bytes) -> tuple[int, ...] | ParseAnomaly:
    """supported_versions as a client sends it (RFC 8446 §4.2.1). Drafts (0x7fNN,
    0x7eNN) and GREASE stay plain ints."""
    return total(_supported_versions, data, "supported_versions", Anomaly.MALFORMED_EXTENSION)


def parse_selected_version(data: bytes) -> int | ParseAnomaly:
    """supported_versions as a server sends it (RFC 8446 §4.2.1): one version."""
    return total(_selected_version, data, "supported_versions", Anomaly.MALFORMED_EXTENSION)


def parse_supported_groups(data: bytes) -> tuple[int, ...] | ParseAnomaly:
    """supported_groups / elliptic_curves (RFC 8446 §4.2.7, RFC 8422 §5.1.1)."""
    return total(_supported_groups, data, "supported_groups", Anomaly.MALFORMED_EXTENSION)


def parse_ec_point_formats(data: bytes) -> tuple[int, ...] | ParseAnomaly:
    """ec_point_formats (RFC 8422 §5.1.2)."""
    return total(_ec_point_formats, data, "ec_point_formats", Anomaly.MALFORMED_EXTENSION)


def parse_signature_algorithms(data: bytes) -> tuple[int, ...] | ParseAnomaly:
    """signature_algorithms / signature_algorithms_cert (RFC 8446 §4.2.3)."""
    return total(_signature_algorithms, data, "signature_algorithms", Anomaly.MALFORMED_EXTENSION)


def parse_key_share_client_hello(data: bytes) -> tuple[int, ...] | ParseAnomaly:
    """key_share in a ClientHello (RFC 8446 §4.2.8): the offered groups, wire order."""
    return total(_key_share_client_hello, data, "key_share", Anomaly.MALFORMED_EXTENSION)


def parse_key_share_server_hello(data: bytes) -> int | ParseAnomaly:
    """key_share in a ServerHello (RFC 8446 §4.2.8): the group of ``server_share``."""
    return total(_key_share_entry, data, "key_share", Anomaly.MALFORMED_EXTENSION)


def parse_key_share_hello_retry_request(data: bytes) -> int | ParseAnomaly:
    """key_share in a HelloRetryRequest (RFC 8446 §4.2.8): ``selected_group``."""
    return total(_key_share_hello_retry_request, data, "key_share", Anomaly.MALFORMED_EXTENSION)


def parse_alpn(data: bytes) -> tuple[bytes, ...] | ParseAnomaly:
    """application_layer_protocol_negotiation (RFC 7301 §3.1): protocol names, wire order."""
    return total(_alpn, data, "ALPN", Anomaly.MALFORMED_EXTENSION)


# --- hellos -----------------------------------------------------------------------

_Reader = Callable[[Cursor], Any]
"""An extension body reader; its value goes into the hello field named next to it."""

_CLIENT_EXTENSIONS: Final[dict[int, tuple[str, _Reader]]] = {
    ExtensionType.server_name: ("sni", _server_name),
    ExtensionType.supported_versions: ("supported_versions", _supported_versions),
    ExtensionType.supported_groups: ("supported_groups", _supported_groups),
    ExtensionType.ec_point_formats: ("ec_point_formats", _ec_point_formats),
    ExtensionType.key_share: ("key_share_groups", _key_share_client_hello),
    ExtensionType.key_share_old: ("key_share_groups", _key_share_client_hello),
    ExtensionType.signature_algorithms: ("signature_algorithms", _signature_algorithms),
    ExtensionType.application_layer_protocol_negotiation: ("alpn", _alpn),
    ExtensionType.session_ticket: ("session_ticket", _session_ticket),
    ExtensionType.pre_shared_key: ("psk", _present),
    ExtensionType.encrypted_client_hello: ("ech", _present),
}

_SERVER_EXTENSIONS: Final[dict[int, tuple[str, _Reader]]] = {
    ExtensionType.supported_versions: ("selected_version", _selected_version),
    ExtensionType.key_share: ("key_share_group", _key_share_entry),
    ExtensionType.key_share_old: ("key_share_group", _key_share_entry),
    ExtensionType.application_layer_protocol_negotiation: ("alpn", _alpn_selected),
}

_HRR_EXTENSIONS: Final[dict[int, tuple[str, _Reader]]] = {
    **_SERVER_EXTENSIONS,
    ExtensionType.key_share: ("key_share_group", _key_share_hello_retry_request),
    ExtensionType.key_share_old: ("key_share_group", _key_share_hello_retry_request),
}


_EXTENSIONS: Final[dict[tuple[int, bytes], Extension]] = {}
"""Raw extensions already seen: most are the same on every connection of a client
(groups, signature algorithms, ALPN...), so they are shared rather than copied."""

_PER_CONNECTION: Final = frozenset(
    {
        ExtensionType.server_name,
        ExtensionType.session_ticket,
        ExtensionType.key_share_old,
        ExtensionType.pre_shared_key,
        ExtensionType.cookie,
        ExtensionType.key_share,
        ExtensionType.encrypted_client_hello,
    }
)
"""Extensions whose bytes differ from one connection to the next (keys, tickets, names):
never shared, they would only fill the table."""


def _extension(ext_type: int, data: bytes) -> Extension:
    if len(data) > MAX_INTERNED_LENGTH or ext_type in _PER_CONNECTION:
        return Extension(type=ext_type, data=data)
    key = (ext_type, data)
    known = _EXTENSIONS.get(key)
    if known is None:
        known = Extension(type=ext_type, data=data)
        if len(_EXTENSIONS) < MAX_INTERNED:
            _EXTENSIONS[key] = known
    return known


_VALUES: Final[dict[tuple[_Reader, bytes], Any]] = {}
"""Typed values of the shared extensions already read (same bytes, same value)."""


def _read_extension(read: _Reader, ext_type: int, data: bytes) -> Any:
    shared = len(data) <= MAX_INTERNED_LENGTH and ext_type not in _PER_CONNECTION
    if shared:
        known = _VALUES.get((read, data))
        if known is not None:
            return known
    value = total(read, data, f"extension {ext_type:#06x}", Anomaly.MALFORMED_EXTENSION)
    if shared and len(_VALUES) < MAX_INTERNED:
        _VALUES[(read, data)] = value
    return value


def _extensions(
    cur: Cursor,
    readers: dict[int, tuple[str, _Reader]],
    fields: dict[str, Any],
    anomalies: list[Anomaly],
) -> tuple[Extension, ...]:
    """Read the optional ``Extension extensions<..2^16-1>`` block that ends a hello.

    Fills ``fields`` from the extensions in ``readers`` (first copy wins) and reports
    problems in ``anomalies``; broken framing keeps the extensions read before it.
    """
    found: list[Extension] = []
    seen: set[int] = set()
    if cur.at_end:  # RFC 5246 §7.4.1.2: a hello may end before its extensions
        return ()
    try:
        # The framing is walked by hand (this loop runs for every extension of every
        # hello); the typed extensions are read with bounds-checked cursors.
        block = cur.vector(2, "extensions").rest()
        pos, n = 0, len(block)
        while pos < n:
            if pos + 4 > n:
                raise Truncated(f"extensions: {n - pos} bytes left, an extension header wanted")
            ext_type = (block[pos] << 8) | block[pos + 1]
            end = pos + 4 + ((block[pos + 2] << 8) | block[pos + 3])
            if end > n:
                raise Truncated(f"extension {ext_type:#06x}: runs past the extensions block")
            data = block[pos + 4 : end]
            pos = end
            found.append(_extension(ext_type, data))
            if ext_type in seen:
                anomalies.append(Anomaly.DUPLICATE_EXTENSION)
                continue
            seen.add(ext_type)
            entry = readers.get(ext_type)
            if entry is None:
                continue
            field, read = entry
            value = _read_extension(read, ext_type, data)
            if isinstance(value, ParseAnomaly):
                anomalies.append(value.anomaly)
            else:
                fields.setdefault(field, value)
        cur.expect_end()
    except Leftover:
        anomalies.append(Anomaly.TRAILING_BYTES)
    except Malformed:
        anomalies.append(Anomaly.MALFORMED_HANDSHAKE)
    return tuple(found)


def _session_id(cur: Cursor) -> bytes:
    session_id = cur.opaque(1)
    if len(session_id) > MAX_SESSION_ID:
        raise Malformed(f"session_id of {len(session_id)} bytes")
    return session_id


def parse_client_hello(body: bytes, *, dtls: bool = False) -> ClientHello | ParseAnomaly:
    """RFC 8446 §4.1.2 / RFC 5246 §7.4.1.2 ClientHello (``body``: after the 4-byte header).

    With ``dtls`` the body is a DTLS ClientHello (RFC 6347 §4.2.1, RFC 9147 §5.3): a
    ``cookie<0..2^8-1>`` follows the session id and lands in ``ClientHello.cookie``.
    """
    cur = Cursor(body, "ClientHello")
    cookie: bytes | None = None
    try:
        legacy_version = cur.u16()
        random = cur.bytes(32)
        session_id = _session_id(cur)
        if dtls:
            cookie = cur.opaque(1)
        cipher_suites = cur.uint_list(2, 2)
        compression_methods = cur.opaque(1)
    except Malformed as exc:
        return ParseAnomaly(anomaly=Anomaly.MALFORMED_HANDSHAKE, detail=str(exc))
    fields: dict[str, Any] = {}
    anomalies: list[Anomaly] = []
    extensions = _extensions(cur, _CLIENT_EXTENSIONS, fields, anomalies)
    return ClientHello(
        legacy_version=legacy_version,
        random=random,
        session_id=session_id,
        cipher_suites=cipher_suites,
        compression_methods=compression_methods,
        extensions=extensions,
        cookie=cookie,
        anomalies=tuple(anomalies),
        **fields,
    )


def _hello_verify_request(cur: Cursor) -> HelloVerifyRequest:
    """RFC 6347 §4.2.1: ``ProtocolVersion server_version; opaque cookie<0..2^8-1>``."""
    return HelloVerifyRequest(server_version=cur.u16(), cookie=cur.opaque(1))


def parse_hello_verify_request(body: bytes) -> HelloVerifyRequest | ParseAnomaly:
    """A DTLS HelloVerifyRequest body (RFC 6347 §4.2.1); bytes after the cookie are
    ``trailing_bytes``."""
    return total(_hello_verify_request, body, "HelloVerifyRequest")


def parse_server_hello(body: bytes) -> ServerHello | ParseAnomaly:
    """RFC 8446 §4.1.3 / RFC 5246 §7.4.1.3 ServerHello, or a HelloRetryRequest (same
    message type, special random). A TLS 1.3 draft ≤ 21 ServerHello has neither session
    id nor compression method; it says 0x7fNN (or 0x0304, early drafts) where RFC 8446
    servers say 0x0303."""
    cur = Cursor(body, "ServerHello")
    try:
        legacy_version = cur.u16()
        random = cur.bytes(32)
        if legacy_version >> 8 == 0x7F or legacy_version == ProtocolVersion.TLSv1_3:
            session_id, cipher_suite, compression_method = b"", cur.u16(), 0
        else:
            session_id = _session_id(cur)
            cipher_suite = cur.u16()
            compression_method = cur.u8()
    except Malformed as exc:
        return ParseAnomaly(anomaly=Anomaly.MALFORMED_HANDSHAKE, detail=str(exc))
    is_hrr = random == HRR_RANDOM
    fields: dict[str, Any] = {}
    anomalies: list[Anomaly] = []
    readers = _HRR_EXTENSIONS if is_hrr else _SERVER_EXTENSIONS
    extensions = _extensions(cur, readers, fields, anomalies)
    return ServerHello(
        legacy_version=legacy_version,
        random=random,
        session_id=session_id,
        cipher_suite=cipher_suite,
        compression_method=compression_method,
        extensions=extensions,
        is_hrr=is_hrr,
        anomalies=tuple(anomalies),
        **fields,
    )


_ENCRYPTED_EXTENSIONS: Final[dict[int, tuple[str, _Reader]]] = {
    ExtensionType.application_layer_protocol_negotiation: ("alpn", _alpn_selected),
}


def parse_encrypted_extensions(body: bytes) -> EncryptedExtensions | ParseAnomaly:
    """RFC 8446 §4.3.1 EncryptedExtensions: ``Extension extensions<0..2^16-1>``."""
    cur = Cursor(body, "EncryptedExtensions")
    fields: dict[str, Any] = {}
    anomalies: list[Anomaly] = []
    if cur.at_end:
        return ParseAnomaly(anomaly=Anomaly.MALFORMED_HANDSHAKE,
                            detail="EncryptedExtensions: empty, the extensions block wanted")
    extensions = _extensions(cur, _ENCRYPTED_EXTENSIONS, fields, anomalies)
    return EncryptedExtensions(extensions=extensions, anomalies=tuple(anomalies), **fields)


def parse_hello_retry_request(body: bytes) -> ServerHello | ParseAnomaly:
    """HelloRetryRequest as its own message (type 6) in TLS 1.3 drafts ≤ 21.

    Drafts 19-21: ``server_version, cipher_suite, extensions``; draft 18 has no
    cipher_suite (then ``cipher_suite`` is 0). There is no random or session id: both
    are empty. The result is a ServerHello with ``is_hrr`` set.
    """
    cur = Cursor(body, "HelloRetryRequest")
    try:
        version = cur.u16()
        # draft 18 when the next two bytes are exactly the length of the rest
        ends_here = cur.remaining >= 2 and body[2:4] == (cur.remaining - 2).to_bytes(2, "big")
        cipher_suite = 0 if ends_here else cur.u16()
    except Malformed as exc:
        return ParseAnomaly(anomaly=Anomaly.MALFORMED_HANDSHAKE, detail=str(exc))
    fields: dict[str, Any] = {}
    anomalies: list[Anomaly] = []
    extensions = _extensions(cur, _HRR_EXTENSIONS, fields, anomalies)
    return ServerHello(
        legacy_version=version,
        random=b"",
        session_id=b"",
        cipher_suite=cipher_suite,
        compression_method=0,
        extensions=extensions,
        is_hrr=True,
        anomalies=tuple(anomalies),
        **fields,
    )


def _sslv2_client_hello(cur: Cursor) -> ClientHello:
    """RFC 5246 E.2 / RFC 6101 E.1 CLIENT-HELLO with its 2-byte record header."""
    header = cur.u16()
    if not header & 0x8000:
        raise Malformed("SSLv2 record without the 2-byte header flag")
    if header & 0x7FFF != cur.remaining:
        raise Malformed(f"SSLv2 record length {header & 0x7FFF}, {cur.remaining} bytes follow")
    if cur.u8() != HandshakeType.client_hello:
        raise Malformed("SSLv2 message is not a CLIENT-HELLO")
    version = cur.u16()
    spec_length, session_id_length, challenge_length = cur.u16(), cur.u16(), cur.u16()
    if spec_length % 3:
        raise Malformed(f"SSLv2 cipher_spec_length {spec_length} is not a multiple of 3")
    if session_id_length > MAX_SESSION_ID or not 16 <= challenge_length <= 32:
        raise Malformed("SSLv2 session id or challenge length out of range")
    specs = [cur.u24() for _ in range(spec_length // 3)]
    session_id = cur.bytes(session_id_length)
    challenge = cur.bytes(challenge_length)
    return ClientHello(
        legacy_version=version,
        random=challenge,
        session_id=session_id,
        cipher_suites=tuple(spec for spec in specs if spec >> 16 == 0),
        compression_methods=b"",
        extensions=(),
        sslv2=True,
    )


def parse_sslv2_client_hello(record: bytes) -> ClientHello | ParseAnomaly:
    """An SSLv2-compatible ClientHello (RFC 5246 E.2), the whole record header included.

    Cipher specs are 3 bytes; those whose first byte is 0 are TLS suites and are kept as
    2-byte values, the SSLv2-only ones are dropped. The challenge becomes ``random``.
    """
    return total(_sslv2_client_hello, record, "SSLv2 ClientHello")
