"""Code points of the TLS wire format, named as in the RFCs and the IANA registries.

What it does: one ``IntEnum`` per registry the parsers need (record content types,
handshake message types, alert levels and descriptions, extension types, protocol
versions, EC curve types) and :func:`is_grease` (RFC 8701).

What it does not do: cipher suite, group and signature scheme names, and the display
strings of the record (``TLSv1.2``) live in :mod:`analyzer.tls.names`. Unknown codes are
data, not errors: parsers keep them as plain ``int`` and never call these enums on
untrusted values without checking membership.

Sources: RFC 5246 §6.2.1, §7.2, §7.4; RFC 8446 §4, §4.2, §5.1, §6; RFC 8422 §5.4;
RFC 8701; the IANA "TLS Parameters" and "TLS ExtensionType Values" registries.
"""

from __future__ import annotations

from enum import IntEnum


class ContentType(IntEnum):
    """TLS record content types (RFC 8446 §5.1, RFC 6520, RFC 9146)."""

    change_cipher_spec = 20
    alert = 21
    handshake = 22
    application_data = 23
    heartbeat = 24
    tls12_cid = 25
    """DTLS 1.2 only (RFC 9146); never valid on TCP."""
    ack = 26
    """DTLS 1.3 only (RFC 9147); never valid on TCP."""


TLS_CONTENT_TYPES = frozenset(range(ContentType.change_cipher_spec, ContentType.heartbeat + 1))
"""Content types a TLS (not DTLS) record may carry: 20..24."""


class ProtocolVersion(IntEnum):
    """Values of ``legacy_version``/``supported_versions`` (RFC 8446 §4.2.1, RFC 6101)."""

    SSLv2 = 0x0002
    SSLv3 = 0x0300
    TLSv1_0 = 0x0301
    TLSv1_1 = 0x0302
    TLSv1_2 = 0x0303
    TLSv1_3 = 0x0304


def is_tls13_draft(version: int) -> bool:
    """True for TLS 1.3 draft versions: 0x7fNN (IETF drafts) and 0x7eNN (Facebook's)."""
    return version >> 8 in (0x7E, 0x7F)


class HandshakeType(IntEnum):
    """Handshake message types (IANA "TLS HandshakeType")."""

    hello_request = 0
    client_hello = 1
    server_hello = 2
    hello_verify_request = 3
    """DTLS only (RFC 6347)."""
    new_session_ticket = 4
    end_of_early_data = 5
    hello_retry_request = 6
    """TLS 1.3 drafts ≤ 21; RFC 8446 sends a ServerHello with a special random instead."""
    encrypted_extensions = 8
    request_connection_id = 9
    new_connection_id = 10
    certificate = 11
    server_key_exchange = 12
    certificate_request = 13
    server_hello_done = 14
    certificate_verify = 15
    client_key_exchange = 16
    client_certificate_request = 17
    finished = 20
    certificate_url = 21
    certificate_status = 22
    supplemental_data = 23
    key_update = 24
    compressed_certificate = 25
    ekt_key = 26
    next_protocol = 67
    """NPN (draft-agl-tls-nextprotoneg); never registered, still seen in old captures."""
    message_hash = 254


class AlertLevel(IntEnum):
    """RFC 5246 §7.2."""

    warning = 1
    fatal = 2


class AlertDescription(IntEnum):
    """IANA "TLS Alerts". Values IANA now marks ``_RESERVED`` keep their RFC 5246 names:
    they still appear on the wire (SSLv3 ``no_certificate``, TLS 1.2 ``no_renegotiation``)."""

    close_notify = 0
    unexpected_message = 10
    bad_record_mac = 20
    decryption_failed = 21
    record_overflow = 22
    decompression_failure = 30
    handshake_failure = 40
    no_certificate = 41
    bad_certificate = 42
    unsupported_certificate = 43
    certificate_revoked = 44
    certificate_expired = 45
    certificate_unknown = 46
    illegal_parameter = 47
    unknown_ca = 48
    access_denied = 49
    decode_error = 50
    decrypt_error = 51
    too_many_cids_requested = 52
    export_restriction = 60
    protocol_version = 70
    insufficient_security = 71
    internal_error = 80
    inappropriate_fallback = 86
    user_canceled = 90
    no_renegotiation = 100
    missing_extension = 109
    unsupported_extension = 110
    certificate_unobtainable = 111
    unrecognized_name = 112
    bad_certificate_status_response = 113
    bad_certificate_hash_value = 114
    unknown_psk_identity = 115
    certificate_required = 116
    general_error = 117
    no_application_protocol = 120
    ech_required = 121


class ExtensionType(IntEnum):
    """IANA "TLS ExtensionType Values", plus a few unregistered code points seen in traffic."""

    server_name = 0
    max_fragment_length = 1
    client_certificate_url = 2
    trusted_ca_keys = 3
    truncated_hmac = 4
    status_request = 5
    user_mapping = 6
    client_authz = 7
    server_authz = 8
    cert_type = 9
    supported_groups = 10
    ec_point_formats = 11
    srp = 12
    signature_algorithms = 13
    use_srtp = 14
    heartbeat = 15
    application_layer_protocol_negotiation = 16
    status_request_v2 = 17
    signed_certificate_timestamp = 18
    client_certificate_type = 19
    server_certificate_type = 20
    padding = 21
    encrypt_then_mac = 22
    extended_master_secret = 23
    token_binding = 24
    cached_info = 25
    tls_lts = 26
    compress_certificate = 27
    record_size_limit = 28
    pwd_protect = 29
    pwd_clear = 30
    password_salt = 31
    ticket_pinning = 32
    tls_cert_with_extern_psk = 33
    delegated_credential = 34
    session_ticket = 35
    TLMSP = 36
    TLMSP_proxying = 37
    TLMSP_delegate = 38
    supported_ekt_ciphers = 39
    key_share_old = 40
    """key_share in TLS 1.3 drafts ≤ 22 (IANA: reserved)."""
    pre_shared_key = 41
    early_data = 42
    supported_versions = 43
    cookie = 44
    psk_key_exchange_modes = 45
    certificate_authorities = 47
    oid_filters = 48
    post_handshake_auth = 49
    signature_algorithms_cert = 50
    key_share = 51
    transparency_info = 52
    connection_id_deprecated = 53
    connection_id = 54
    external_id_hash = 55
    external_session_id = 56
    quic_transport_parameters = 57
    ticket_request = 58
    dnssec_chain = 59
    sequence_number_encryption_algorithms = 60
    rrc = 61
    tls_flags = 62
    next_protocol_negotiation = 13172
    """NPN (0x3374), unregistered."""
    application_settings = 17513
    """ALPS (0x4469), Chrome's first code point, unregistered."""
    application_settings_new = 17613
    """ALPS (0x44cd), Chrome's current code point, unregistered."""
    encrypted_client_hello = 0xFE0D
    encrypted_server_name = 0xFFCE
    """ESNI drafts, superseded by encrypted_client_hello."""
    renegotiation_info = 0xFF01


class NameType(IntEnum):
    """RFC 6066 §3 ServerName.name_type."""

    host_name = 0


class ECCurveType(IntEnum):
    """RFC 8422 §5.4 ECParameters.curve_type."""

    explicit_prime = 1
    explicit_char2 = 2
    named_curve = 3


def is_grease(value: int) -> bool:
    """RFC 8701 GREASE value: 0x0a0a, 0x1a1a, ..., 0xfafa (both bytes equal, low nibbles 0xa).

    Applies to 16-bit code points: cipher suites, extensions, groups, signature
    algorithms, versions.
    """
    return value & 0x0F0F == 0x0A0A and value >> 8 == value & 0xFF
