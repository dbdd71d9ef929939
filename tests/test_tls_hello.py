"""Hello, extension, Certificate and ServerKeyExchange parsers (analyzer.tls.hello/handshake)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from analyzer.anomalies import Anomaly
from analyzer.limits import MAX_CHAIN_CERTS
from analyzer.tls import enums
from analyzer.tls.enums import ExtensionType, is_grease
from analyzer.tls.events import ParseAnomaly
from analyzer.tls.handshake import (
    parse_certificate,
    parse_handshake_body,
    parse_server_key_exchange,
)
from analyzer.tls.hello import (
    parse_alpn,
    parse_client_hello,
    parse_ec_point_formats,
    parse_hello_retry_request,
    parse_key_share_client_hello,
    parse_key_share_hello_retry_request,
    parse_key_share_server_hello,
    parse_selected_version,
    parse_server_hello,
    parse_server_name,
    parse_signature_algorithms,
    parse_sslv2_client_hello,
    parse_supported_groups,
    parse_supported_versions,
)
from analyzer.tls.messages import (
    CertificateChain,
    ClientHello,
    ServerHello,
    ServerKeyExchange,
)
from tests.tls_fixtures import (
    CERT_A,
    CERT_B,
    DHE_SERVER_KEY_EXCHANGE,
    DRAFT_HELLO_RETRY_REQUEST,
    ECDHE_SERVER_KEY_EXCHANGE,
    HELLO_RETRY_REQUEST,
    MESSAGES,
    RFC8448_CLIENT_HELLO,
    RFC8448_SERVER_HELLO,
    SSLV2_CLIENT_HELLO,
    TLS12_CERTIFICATE,
    TLS12_CLIENT_HELLO,
    TLS13_CERTIFICATE,
    body,
    client_hello,
    extension,
    h,
)


def ok(value: Any) -> Any:
    assert not isinstance(value, ParseAnomaly), value
    return value


# --- ClientHello -----------------------------------------------------------------


def test_rfc8448_client_hello() -> None:
    ch = ok(parse_client_hello(body(RFC8448_CLIENT_HELLO)))
    assert isinstance(ch, ClientHello)
    assert ch.legacy_version == 0x0303
    assert ch.random.hex().startswith("cb34ecb1e78163ba") and len(ch.random) == 32
    assert ch.session_id == b""
    assert ch.cipher_suites == (0x1301, 0x1303, 0x1302)
    assert ch.compression_methods == b"\x00"
    assert [e.type for e in ch.extensions] == [0, 0xFF01, 10, 35, 51, 43, 13, 45, 28]
    assert ch.sni == "server"
    assert ch.supported_versions == (0x0304,)
    assert ch.supported_groups == (0x1D, 0x17, 0x18, 0x19, 0x100, 0x101, 0x102, 0x103, 0x104)
    assert ch.key_share_groups == (0x1D,)
    assert ch.signature_algorithms[:3] == (0x0403, 0x0503, 0x0603)
    assert len(ch.signature_algorithms) == 15
    assert ch.alpn == () and ch.ec_point_formats == ()
    assert not ch.session_ticket and not ch.psk and not ch.ech and not ch.sslv2
    assert ch.anomalies == ()
    # raw extension bodies are exact slices of the message
    assert ch.extensions[4].data[:4] == h("00 24 00 1d")


def test_tls12_client_hello_keeps_grease_in_wire_order() -> None:
    ch = ok(parse_client_hello(body(TLS12_CLIENT_HELLO)))
    assert ch.cipher_suites == (0x0A0A, 0xC02F, 0xC030, 0x00FF)
    assert [e.type for e in ch.extensions] == [0x1A1A, 0, 10, 11, 13, 16, 35, 0xFF01]
    assert ch.sni == "example.com"
    assert ch.supported_groups == (0x2A2A, 0x1D, 0x17)
    assert ch.ec_point_formats == (0,)
    assert ch.signature_algorithms == (0x0403, 0x0804, 0x0401)
    assert ch.alpn == (b"h2", b"http/1.1")
    assert ch.supported_versions == ()
    assert ch.anomalies == ()


def test_client_hello_without_extensions() -> None:
    msg = body(TLS12_CLIENT_HELLO)
    fixed = 2 + 32 + 1 + 2 + 8 + 2
    ch = ok(parse_client_hello(msg[:fixed]))
    assert ch.extensions == () and ch.sni is None and ch.anomalies == ()


def test_resumption_and_ech_flags() -> None:
    msg = client_hello(
        extension(ExtensionType.session_ticket, b"\x01\x02\x03"),
        extension(ExtensionType.encrypted_client_hello, h("00 00 01")),
        extension(ExtensionType.pre_shared_key, h("00 00 00 00")),
    )
    ch = ok(parse_client_hello(body(msg)))
    assert ch.session_ticket and ch.ech and ch.psk
    empty_ticket = ok(parse_client_hello(body(client_hello(extension(35, b"")))))
    assert not empty_ticket.session_ticket and not empty_ticket.psk


def test_malformed_extension_keeps_the_rest_of_the_hello() -> None:
    # ALPN list length says 13 where 12 bytes follow: only ALPN is lost
    broken = TLS12_CLIENT_HELLO.replace(h("00 10 00 0e 00 0c"), h("00 10 00 0e 00 0d"))
    ch = ok(parse_client_hello(body(broken)))
    assert ch.alpn == ()
    assert ch.sni == "example.com" and ch.cipher_suites[1] == 0xC02F
    assert len(ch.extensions) == 8
    assert ch.anomalies == (Anomaly.MALFORMED_EXTENSION,)


def test_extension_with_trailing_bytes() -> None:
    ch = ok(parse_client_hello(body(client_hello(extension(10, h("00 02 00 1d ff"))))))
    assert ch.supported_groups == ()
    assert ch.anomalies == (Anomaly.TRAILING_BYTES,)


def test_duplicate_extension_first_copy_wins() -> None:
    sni = extension(0, h("00 06 00 00 03") + b"one")
    again = extension(0, h("00 06 00 00 03") + b"two")
    ch = ok(parse_client_hello(body(client_hello(sni, again))))
    assert ch.sni == "one"
    assert [e.data[-3:] for e in ch.extensions] == [b"one", b"two"]
    assert ch.anomalies == (Anomaly.DUPLICATE_EXTENSION,)


def test_draft_key_share_code_point_is_read_first_one_wins() -> None:
    old = extension(ExtensionType.key_share_old, h("00 06 00 17 00 02 aa bb"))
    new = extension(ExtensionType.key_share, h("00 06 00 1d 00 02 aa bb"))
    ch = ok(parse_client_hello(body(client_hello(old, new))))
    assert ch.key_share_groups == (0x17,) and ch.anomalies == ()


def test_broken_extension_block_keeps_fixed_fields_and_earlier_extensions() -> None:
    msg = body(TLS12_CLIENT_HELLO)
    ch = ok(parse_client_hello(msg[:-3]))  # last extension cut short
    assert ch.cipher_suites == (0x0A0A, 0xC02F, 0xC030, 0x00FF)
    assert ch.anomalies == (Anomaly.MALFORMED_HANDSHAKE,)
    ch = ok(parse_client_hello(msg + b"\x00"))  # a byte after the extensions
    assert ch.anomalies == (Anomaly.TRAILING_BYTES,) and ch.alpn == (b"h2", b"http/1.1")


@pytest.mark.parametrize(
    ("cut", "why"),
    [(0, "nothing"), (33, "inside random"), (2 + 32 + 1 + 3, "inside cipher_suites")],
)
def test_broken_fixed_fields_are_an_anomaly(cut: int, why: str) -> None:
    result = parse_client_hello(body(TLS12_CLIENT_HELLO)[:cut])
    assert isinstance(result, ParseAnomaly), why
    assert result.anomaly == Anomaly.MALFORMED_HANDSHAKE


def test_odd_cipher_suites_length_and_long_session_id() -> None:
    msg = bytearray(body(TLS12_CLIENT_HELLO))
    msg[35:37] = h("00 07")
    assert isinstance(parse_client_hello(bytes(msg)), ParseAnomaly)
    long_sid = h("03 03") + bytes(32) + h("21") + bytes(33) + h("00 02 13 01 01 00")
    assert isinstance(parse_client_hello(long_sid), ParseAnomaly)


# --- ServerHello, HelloRetryRequest --------------------------------------------------


def test_rfc8448_server_hello() -> None:
    sh = ok(parse_server_hello(body(RFC8448_SERVER_HELLO)))
    assert isinstance(sh, ServerHello)
    assert sh.legacy_version == 0x0303 and sh.selected_version == 0x0304
    assert sh.version == 0x0304
    assert sh.cipher_suite == 0x1301 and sh.compression_method == 0
    assert sh.key_share_group == 0x1D
    assert not sh.is_hrr and sh.alpn is None and sh.anomalies == ()
    assert [e.type for e in sh.extensions] == [51, 43]


def test_tls12_server_hello_with_alpn() -> None:
    exts = extension(16, h("00 03 02 68 32")) + extension(0xFF01, h("00"))
    fields = h("03 03") + bytes(32) + h("20") + bytes(range(32)) + h("c0 2f 00")
    sh = ok(parse_server_hello(fields + len(exts).to_bytes(2, "big") + exts))
    assert sh.version == 0x0303 and sh.selected_version is None
    assert sh.session_id == bytes(range(32)) and sh.cipher_suite == 0xC02F
    assert sh.alpn == b"h2"
    two = extension(16, h("00 06 02 68 32 02 68 33"))
    sh = ok(parse_server_hello(fields + len(two).to_bytes(2, "big") + two))
    assert sh.alpn is None and sh.anomalies == (Anomaly.MALFORMED_EXTENSION,)


def test_hello_retry_request_by_random() -> None:
    hrr = ok(parse_server_hello(body(HELLO_RETRY_REQUEST)))
    assert hrr.is_hrr
    assert hrr.key_share_group == 0x17  # selected_group only, no key
    assert hrr.version == 0x0304 and hrr.cipher_suite == 0x1301


def test_draft_hello_retry_request_message() -> None:
    hrr = ok(parse_hello_retry_request(body(DRAFT_HELLO_RETRY_REQUEST)))
    assert hrr.is_hrr and hrr.legacy_version == 0x7F13
    assert hrr.cipher_suite == 0x1301 and hrr.key_share_group == 0x1D
    draft18 = h("7f 12 00 06 00 28 00 02 00 17")  # no cipher_suite in draft 18
    hrr = ok(parse_hello_retry_request(draft18))
    assert hrr.cipher_suite == 0 and hrr.key_share_group == 0x17 and hrr.anomalies == ()


def test_draft_server_hello_layout() -> None:
    # drafts <= 21: version, random, cipher_suite, extensions (no session id, compression)
    exts = extension(40, h("00 1d 00 02 ab cd"))
    sh = ok(parse_server_hello(h("7f 12") + bytes(32) + h("13 01") + h("00 0a") + exts))
    assert sh.version == 0x7F12 and sh.cipher_suite == 0x1301
    assert sh.key_share_group == 0x1D and sh.anomalies == ()


# --- SSLv2-compatible ClientHello -----------------------------------------------------


def test_sslv2_client_hello() -> None:
    ch = ok(parse_sslv2_client_hello(SSLV2_CLIENT_HELLO))
    assert ch.sslv2 and ch.legacy_version == 0x0301
    assert ch.cipher_suites == (0x0035, 0x00FF)  # the SSLv2-only spec 0x0700c0 is dropped
    assert ch.random == bytes(range(0xF0, 0x100))
    assert ch.session_id == b"" and ch.extensions == ()


@pytest.mark.parametrize(
    "bad",
    [
        SSLV2_CLIENT_HELLO[:-1],  # shorter than its header says
        SSLV2_CLIENT_HELLO + b"\x00",  # longer
        h("80 22 01 03 01 00 08") + SSLV2_CLIENT_HELLO[7:],  # spec length not 3n
        h("00 22") + SSLV2_CLIENT_HELLO[2:],  # no 2-byte header flag
    ],
)
def test_sslv2_client_hello_malformed(bad: bytes) -> None:
    assert isinstance(parse_sslv2_client_hello(bad), ParseAnomaly)


# --- extensions one by one -----------------------------------------------------------


def test_server_name() -> None:
    assert parse_server_name(h("00 08 00 00 05") + b"a.b.c") == "a.b.c"
    assert parse_server_name(h("00 08 00 00 05") + b"a.bc.") == "a.bc."  # kept as sent
    assert parse_server_name(h("00 05 00 00 02 ff 41")) == "\\xffA"
    assert parse_server_name(h("00 05 07 00 02 41 41")) is None  # no host_name entry
    for bad in (b"", h("00 00"), h("00 03 00 00 00"), h("00 05 00 00 03 41 41")):
        result = parse_server_name(bad)
        assert isinstance(result, ParseAnomaly) and result.anomaly == Anomaly.MALFORMED_EXTENSION


def test_supported_versions_drafts_and_grease_stay_ints() -> None:
    data = h("0a 7a 7a 7f 1c 7e 02 03 04 03 03")
    assert parse_supported_versions(data) == (0x7A7A, 0x7F1C, 0x7E02, 0x0304, 0x0303)
    assert parse_selected_version(h("7f 17")) == 0x7F17
    assert isinstance(parse_supported_versions(h("03 03 04 03")), ParseAnomaly)
    assert isinstance(parse_selected_version(h("03 04 00")), ParseAnomaly)


def test_key_share_forms() -> None:
    client = h("00 0e 00 1d 00 02 aa bb 00 17 00 04 01 02 03 04")
    assert parse_key_share_client_hello(client) == (0x1D, 0x17)
    assert parse_key_share_client_hello(h("00 00")) == ()
    assert parse_key_share_server_hello(h("00 1d 00 02 aa bb")) == 0x1D
    assert parse_key_share_hello_retry_request(h("00 17")) == 0x17
    result = parse_key_share_server_hello(h("00 17"))
    assert isinstance(result, ParseAnomaly) and result.anomaly == Anomaly.MALFORMED_EXTENSION


def test_list_extensions() -> None:
    assert parse_supported_groups(h("00 04 00 1d 00 17")) == (0x1D, 0x17)
    assert parse_signature_algorithms(h("00 02 08 04")) == (0x0804,)
    assert parse_ec_point_formats(h("02 00 01")) == (0, 1)
    assert parse_alpn(h("00 03 02 68 32")) == (b"h2",)
    trailing = parse_supported_groups(h("00 02 00 1d 00"))
    assert isinstance(trailing, ParseAnomaly) and trailing.anomaly == Anomaly.TRAILING_BYTES
    assert isinstance(parse_alpn(h("00 01 00")), ParseAnomaly)  # empty protocol name
    assert isinstance(parse_supported_groups(h("00 03 00 1d 00")), ParseAnomaly)


def test_is_grease() -> None:
    grease = {0x0A0A + 0x1010 * i for i in range(16)}
    assert all(is_grease(v) for v in grease)
    assert not any(is_grease(v) for v in range(0x10000) if v not in grease)


def test_enums_match_the_registries() -> None:
    assert enums.ExtensionType.encrypted_client_hello == 0xFE0D
    assert enums.ExtensionType.renegotiation_info == 0xFF01
    assert enums.ExtensionType.application_settings == 17513
    assert enums.ExtensionType.application_settings_new == 0x44CD
    assert enums.AlertDescription.inappropriate_fallback == 86
    assert enums.AlertDescription.no_application_protocol == 120
    assert enums.AlertDescription.ech_required == 121
    assert enums.HandshakeType.message_hash == 254
    assert enums.HandshakeType.compressed_certificate == 25


# --- Certificate, ServerKeyExchange ------------------------------------------------------


def test_certificate_both_forms() -> None:
    for message in (TLS12_CERTIFICATE, TLS13_CERTIFICATE):
        chain = ok(parse_certificate(body(message)))
        assert chain == CertificateChain(certificates=(CERT_A, CERT_B))
    assert ok(parse_certificate(h("00 00 00"))).certificates == ()  # client with no cert
    assert ok(parse_certificate(h("00 00 00 00"))).certificates == ()  # TLS 1.3, empty


def test_certificate_malformed() -> None:
    for bad in (
        body(TLS12_CERTIFICATE)[:-1],
        body(TLS12_CERTIFICATE) + b"\x00",
        h("00 00 03 00 00 00"),  # an empty certificate
        b"",
    ):
        result = parse_certificate(bad)
        assert isinstance(result, ParseAnomaly), bad.hex()


def test_certificate_chain_limit() -> None:
    entries = (h("00 00 05") + CERT_A) * (MAX_CHAIN_CERTS + 3)
    chain = ok(parse_certificate(len(entries).to_bytes(3, "big") + entries))
    assert len(chain.certificates) == MAX_CHAIN_CERTS
    assert chain.anomalies == (Anomaly.CHAIN_TOO_LONG,)


def test_server_key_exchange() -> None:
    assert parse_server_key_exchange(body(ECDHE_SERVER_KEY_EXCHANGE)) == ServerKeyExchange(
        named_curve=0x1D
    )
    assert parse_server_key_exchange(body(DHE_SERVER_KEY_EXCHANGE)).named_curve is None
    assert parse_server_key_exchange(h("03 00 17")).named_curve is None  # no point
    assert parse_server_key_exchange(h("03 00 17 41 04")).named_curve is None  # point too long
    assert parse_server_key_exchange(b"").named_curve is None


# --- full consumption, prefixes, random suffixes ----------------------------------------


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_fixture_parses_whole_without_anomalies(name: str) -> None:
    message = MESSAGES[name]
    assert int.from_bytes(message[1:4], "big") == len(message) - 4
    parsed = ok(parse_handshake_body(message[0], body(message)))
    assert parsed is not None
    assert getattr(parsed, "anomalies", ()) == ()


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_every_prefix_parses_to_a_value_or_an_anomaly(name: str) -> None:
    message = MESSAGES[name]
    whole = parse_handshake_body(message[0], body(message))
    for cut in range(len(message) - 4):
        part = parse_handshake_body(message[0], body(message)[:cut])
        if not isinstance(whole, ServerKeyExchange):  # its body is not checked to the end
            assert part != whole
        assert isinstance(
            part, ParseAnomaly | ClientHello | ServerHello | CertificateChain | ServerKeyExchange
        )


PARSERS: list[tuple[Callable[[bytes], object], bytes]] = [
    (parse_client_hello, body(RFC8448_CLIENT_HELLO)),
    (parse_client_hello, body(TLS12_CLIENT_HELLO)),
    (parse_server_hello, body(RFC8448_SERVER_HELLO)),
    (parse_server_hello, body(HELLO_RETRY_REQUEST)),
    (parse_hello_retry_request, body(DRAFT_HELLO_RETRY_REQUEST)),
    (parse_sslv2_client_hello, SSLV2_CLIENT_HELLO),
    (parse_certificate, body(TLS12_CERTIFICATE)),
    (parse_certificate, body(TLS13_CERTIFICATE)),
    (parse_server_key_exchange, body(ECDHE_SERVER_KEY_EXCHANGE)),
    (parse_server_name, h("00 08 00 00 05") + b"a.b.c"),
    (parse_supported_versions, h("04 03 04 03 03")),
    (parse_selected_version, h("03 04")),
    (parse_supported_groups, h("00 04 00 1d 00 17")),
    (parse_ec_point_formats, h("01 00")),
    (parse_signature_algorithms, h("00 04 04 03 08 04")),
    (parse_key_share_client_hello, h("00 06 00 1d 00 02 aa bb")),
    (parse_key_share_server_hello, h("00 1d 00 02 aa bb")),
    (parse_key_share_hello_retry_request, h("00 17")),
    (parse_alpn, h("00 03 02 68 32")),
]


@given(
    which=st.integers(min_value=0, max_value=len(PARSERS) - 1),
    cut=st.integers(min_value=0, max_value=600),
    suffix=st.binary(max_size=300),
)
def test_valid_prefix_and_random_suffix_never_raises(which: int, cut: int, suffix: bytes) -> None:
    parse, valid = PARSERS[which]
    result = parse(valid[:cut] + suffix)
    if isinstance(result, ClientHello | ServerHello):
        assert all(isinstance(a, Anomaly) for a in result.anomalies)
    elif isinstance(result, tuple):
        assert all(isinstance(v, int | bytes) for v in result)
    else:
        assert result is None or isinstance(
            result, ParseAnomaly | int | str | CertificateChain | ServerKeyExchange
        )


@given(msg_type=st.integers(min_value=0, max_value=255), data=st.binary(max_size=400))
def test_any_body_of_any_type_never_raises(msg_type: int, data: bytes) -> None:
    parse_handshake_body(msg_type, data)
